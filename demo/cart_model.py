"""The cart abandonment rule as a batch computation over a whole history, written apart from ``udfs/``.

It reads the records as they are on ``clickstream.events`` (Segment JSON with the collector's ``personId``),
sorts each person's cart ops by event time and walks them, so it knows nothing of arrival order, watermarks,
logs or timers. ``make demo`` prints the reminders it expects beside those the job fired, and the tests
compare the jobs' triggers with :func:`expected_triggers` (so it must stay this plain: it is their oracle).

The rule (README, "The cart abandonment job"):
- a person's key is ``personId``, else ``userId``, else ``anonymousId``; a browser (``anonymousId``) is linked to a
  user by the first identify/alias (in event time) that names both. The browser's cart ops before the link stay
  the browser's and also join the user's cart at the link, folded on their own and added as one change; its
  ops after the link are the user's; the browser's cart ends at the link (only if it had ops before it);
- every cart op changes the cart and restarts the series; reminder k is due at last change + delay k (the first
  of a series no sooner than last reminder + cooldown); an op at time T comes before a reminder due at T; a
  reminder is sent when the cart then holds items, with that cart; a reminder the cooldown pushed past a later
  step's time is skipped;
- with no reminder left, the cart is forgotten just after max(last change, last reminder + cooldown).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["CART_EVENT_NAMES", "ModelPolicy", "ModelTrigger", "expected_triggers", "person_of"]

CART_EVENT_NAMES = ("Product Added", "Product Removed", "Cart Viewed", "Checkout Started", "Order Completed")


@dataclass(frozen=True)
class ModelPolicy:
    delays_ms: tuple[int, ...]
    cooldown_ms: int
    max_reminders: int


@dataclass(frozen=True, order=True)
class ModelTrigger:
    person_id: str
    reminder_index: int
    due_ms: int
    lines: tuple[tuple[str, int], ...]  # (product id, quantity), sorted


@dataclass
class _Op:
    at_ms: int  # when it changes this person's cart (the link's time for a browser's ops that join it)
    group: str  # "" for the person's own ops, else the browser whose ops join at ``at_ms``
    own_ms: int
    message_id: str
    doc: Mapping[str, Any]


def person_of(doc: Mapping[str, Any]) -> str:
    return doc.get("personId") or doc.get("userId") or doc["anonymousId"]


def _time_ms(doc: Mapping[str, Any]) -> int:
    return int(datetime.fromisoformat(doc["timestamp"]).timestamp() * 1000)


def _browser_of(doc: Mapping[str, Any]) -> str:
    return doc.get("previousId") or doc.get("anonymousId") or person_of(doc)


def expected_triggers(docs: Iterable[Mapping[str, Any]], policy: ModelPolicy) -> list[ModelTrigger]:
    unique = list({doc["messageId"]: doc for doc in docs}.values())
    links: dict[str, tuple[int, str]] = {}
    for doc in sorted(unique, key=_time_ms):
        browser, person = _browser_of(doc), person_of(doc)
        if doc["type"] in ("identify", "alias") and browser != person and browser not in links:
            links[browser] = (_time_ms(doc), person)

    ops: dict[str, list[_Op]] = defaultdict(list)
    ended: dict[str, int] = {}
    for doc in unique:
        if doc["type"] != "track" or doc["event"] not in CART_EVENT_NAMES:
            continue
        if doc["event"] in ("Cart Viewed", "Checkout Started") and "products" not in doc.get("properties", {}):
            continue  # a cart view that does not say what is in the cart changes nothing
        t, key = _time_ms(doc), person_of(doc)
        link = links.get(key) if key == doc.get("anonymousId") else None
        if link is None:
            ops[key].append(_Op(t, "", t, doc["messageId"], doc))
        elif t < link[0]:
            ops[key].append(_Op(t, "", t, doc["messageId"], doc))
            ops[link[1]].append(_Op(link[0], key, t, doc["messageId"], doc))
            ended[key] = link[0]
        else:
            ops[link[1]].append(_Op(t, "", t, doc["messageId"], doc))

    triggers: list[ModelTrigger] = []
    for person, person_ops in ops.items():
        triggers += _walk(person, person_ops, ended.get(person), policy)
    return sorted(triggers)


def _walk(person: str, ops: list[_Op], ended_ms: int | None, policy: ModelPolicy) -> list[ModelTrigger]:
    ops = sorted(ops, key=lambda op: (op.at_ms, op.group, op.own_ms, op.message_id))
    changes: list[tuple[int, list[_Op]]] = []  # each change: its time and the ops it is made of
    for op in ops:
        if ended_ms is not None and op.at_ms > ended_ms:
            continue
        if op.group and changes and changes[-1][1][0].group == op.group and changes[-1][0] == op.at_ms:
            changes[-1][1].append(op)
        else:
            changes.append((op.at_ms, [op]))
    if ended_ms is not None:
        changes.append((ended_ms, []))  # the browser's cart ends at the link (sorted: at the same ms it is last)
        changes.sort(key=lambda change: (change[0], change[1] == []))

    cart: dict[str, int] = {}
    last_change: int | None = None
    last_trigger: int | None = None
    sent = 0
    fired: list[ModelTrigger] = []
    length = min(len(policy.delays_ms), policy.max_reminders)

    def due() -> int | None:
        if not cart or last_change is None or sent >= length:
            return None
        at = last_change + policy.delays_ms[sent]
        if sent == 0 and last_trigger is not None:
            at = max(at, last_trigger + policy.cooldown_ms)
        return at

    def pass_time(until: int | None) -> None:
        """Event time moves on to just before ``until`` (forever for None)."""
        nonlocal sent, last_trigger, last_change, cart
        while (at := due()) is not None and (until is None or at < until):
            fired.append(ModelTrigger(person, sent + 1, at, tuple(sorted(cart.items()))))
            last_trigger = at
            sent += 1
            while sent < length and last_change is not None and last_change + policy.delays_ms[sent] <= at:
                sent += 1
        if due() is None and (last_change is not None or last_trigger is not None):
            hold = max(last_change or 0, (last_trigger + policy.cooldown_ms) if last_trigger is not None else 0) + 1
            if until is None or hold < until:
                cart, last_change, last_trigger, sent = {}, None, None, 0

    closed = False
    for at, change in changes:
        if closed:
            break
        pass_time(at)
        if not change:  # the end of a browser's cart
            cart, closed = {}, True
        elif change[0].group:
            joined: dict[str, int] = {}
            for op in change:
                joined = _fold(joined, op.doc)
            for product_id, quantity in joined.items():
                cart[product_id] = cart.get(product_id, 0) + quantity
        else:
            cart = _fold(cart, change[0].doc)
        last_change, sent = at, 0
    pass_time(None)
    return fired


def _fold(cart: dict[str, int], doc: Mapping[str, Any]) -> dict[str, int]:
    """One cart event on a cart of ``{product id: quantity}``; generated events are valid, so no checks."""
    props = doc.get("properties", {})
    name = doc["event"]
    cart = dict(cart)
    if name == "Product Added":
        cart[props["product_id"]] = cart.get(props["product_id"], 0) + props.get("quantity", 1)
    elif name == "Product Removed":
        have = cart.get(props["product_id"], 0)
        left = 0 if props.get("quantity") is None else have - props["quantity"]
        if left > 0:
            cart[props["product_id"]] = left
        else:
            cart.pop(props["product_id"], None)
    elif name == "Order Completed":
        cart = {}
    elif "products" in props:  # a snapshot: Cart Viewed / Checkout Started with the whole cart
        cart = {}
        for line in props["products"]:
            cart[line["product_id"]] = cart.get(line["product_id"], 0) + line.get("quantity", 1)
    return cart
