"""A fixed clock and builders for raw Segment-shaped events, as a collector would put them on Kafka.

Builders return plain dicts so a test can break one field at a time (``{**product_added(...), "userId": 7}``).
Message ids are derived from the other arguments, so building the same event twice gives a true duplicate,
and building it with ``message_id=`` overridden gives a distinct event with the same content.

:func:`cart_trigger_json` and :func:`browse_trigger_json` run such events through the real cart and intent step
functions, so delivery's tests read exactly what the clickstream job puts on ``email.triggers``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from udfs.cart import CartPolicy, Reminder, apply_event, fire_timer
from udfs.events import parse_event
from udfs.intent import BrowsePolicy, IntentWeights, session_end_triggers, summarize

__all__ = [
    "BEGINNING",
    "DAY",
    "HOUR",
    "MINUTE",
    "ONE_MINUTE_LATER",
    "SECOND",
    "as_json",
    "browse_trigger_json",
    "cart_trigger_json",
    "cart_viewed",
    "category_page_viewed",
    "checkout_started",
    "event",
    "iso",
    "order_completed",
    "page_viewed",
    "product",
    "product_added",
    "product_removed",
    "product_viewed",
]

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
BEGINNING = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ONE_MINUTE_LATER = BEGINNING + MINUTE


def iso(t_ms: int) -> str:
    """Epoch ms as the collector writes timestamps: ``2026-01-01T00:05:00.000Z``."""
    moment = datetime.fromtimestamp(t_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(
    type_: str,
    person: str,
    t_ms: int,
    *,
    name: str | None = None,
    properties: Mapping[str, Any] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """Any Segment call; ``name`` is the track ``event`` or the page ``name``."""
    doc: dict[str, Any] = {
        "type": type_,
        "messageId": message_id or f"{type_}:{name or ''}:{person}:{t_ms}:{_fingerprint(properties)}",
        "userId": person,
        "anonymousId": f"anon-{person}",
        "timestamp": iso(t_ms),
        "receivedAt": iso(t_ms),
        "context": {"library": {"name": "tests.support", "version": "0"}},
        "properties": dict(properties or {}),
    }
    if name is not None:
        doc["event" if type_ == "track" else "name"] = name
    return doc


def product(product_id: str = "p1", price: float = 10.0, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    """One entry of a ``products`` array (or the product part of a Product Added)."""
    return {"product_id": product_id, "name": f"Product {product_id}", "price": price, "quantity": quantity, **extra}


def product_added(
    person: str,
    t_ms: int,
    product_id: str = "p1",
    price: float = 10.0,
    quantity: int = 1,
    cart_id: str | None = "c1",
    message_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    props = {**product(product_id, price, quantity), "cart_id": cart_id, "currency": "USD", **extra}
    return event("track", person, t_ms, name="Product Added", properties=props, message_id=message_id)


def product_removed(
    person: str,
    t_ms: int,
    product_id: str = "p1",
    quantity: int | None = None,
    cart_id: str | None = "c1",
    message_id: str | None = None,
) -> dict[str, Any]:
    """Without ``quantity`` the whole line goes."""
    props: dict[str, Any] = {"product_id": product_id, "cart_id": cart_id}
    if quantity is not None:
        props["quantity"] = quantity
    return event("track", person, t_ms, name="Product Removed", properties=props, message_id=message_id)


def cart_viewed(
    person: str,
    t_ms: int,
    products: Sequence[Mapping[str, Any]] | None = None,
    cart_id: str | None = "c1",
    message_id: str | None = None,
) -> dict[str, Any]:
    """With ``products`` it is a snapshot of the whole cart; without, it is just a view."""
    props: dict[str, Any] = {"cart_id": cart_id}
    if products is not None:
        props["products"] = [dict(p) for p in products]
    return event("track", person, t_ms, name="Cart Viewed", properties=props, message_id=message_id)


def checkout_started(
    person: str,
    t_ms: int,
    products: Sequence[Mapping[str, Any]] | None = None,
    cart_id: str | None = "c1",
    message_id: str | None = None,
) -> dict[str, Any]:
    props: dict[str, Any] = {"cart_id": cart_id, "currency": "USD"}
    if products is not None:
        props["products"] = [dict(p) for p in products]
    return event("track", person, t_ms, name="Checkout Started", properties=props, message_id=message_id)


def order_completed(
    person: str,
    t_ms: int,
    order_id: str = "o1",
    total: float = 10.0,
    products: Sequence[Mapping[str, Any]] = (),
    message_id: str | None = None,
) -> dict[str, Any]:
    props = {"order_id": order_id, "total": total, "currency": "USD", "products": [dict(p) for p in products]}
    return event("track", person, t_ms, name="Order Completed", properties=props, message_id=message_id)


def page_viewed(
    person: str,
    t_ms: int,
    name: str = "Home",
    url: str = "https://shop.example/",
    message_id: str | None = None,
) -> dict[str, Any]:
    return event("page", person, t_ms, name=name, properties={"url": url}, message_id=message_id)


def product_viewed(
    person: str,
    t_ms: int,
    product_id: str = "p1",
    category: str | None = None,
    message_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A product page; without ``category`` the property is left out."""
    props: dict[str, Any] = {"product_id": product_id, "name": f"Product {product_id}", **extra}
    if category is not None:
        props["category"] = category
    return event("track", person, t_ms, name="Product Viewed", properties=props, message_id=message_id)


def category_page_viewed(
    person: str,
    t_ms: int,
    category: str = "shoes",
    name: str = "Category",
    message_id: str | None = None,
) -> dict[str, Any]:
    """A page event with ``properties.category``, as a category listing sends it."""
    props = {"url": f"https://shop.example/c/{category}", "category": category}
    return event("page", person, t_ms, name=name, properties=props, message_id=message_id)


def anonymous(doc: Mapping[str, Any], device: str) -> dict[str, Any]:
    """The call as the collector forwards one made before login: no userId, keyed by the browser's id."""
    anonymous_doc = {**doc, "anonymousId": device, "personId": device}
    anonymous_doc.pop("userId", None)
    return anonymous_doc


def login(person: str, t_ms: int, device: str) -> dict[str, Any]:
    """The identify a login sends: it links the browser ``device`` to ``person``."""
    return {**event("identify", person, t_ms), "anonymousId": device, "personId": person}


def as_json(doc: Mapping[str, Any]) -> bytes:
    """The record value the collector would produce."""
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def cart_trigger_json(
    person: str = "ann",
    t_ms: int = BEGINNING,
    products: Sequence[Mapping[str, Any]] = (product("p1", 10.0, 2),),
    template: str = "cart_reminder_1",
    delay_ms: int = HOUR,
) -> bytes:
    """The clickstream job's reminder for ``products`` added at ``t_ms`` and left alone; it fires at
    ``t_ms + delay_ms``."""
    policy = CartPolicy(reminders=(Reminder(delay_ms, template),), cooldown_ms=0, max_reminders=1, dedup_window=16)
    state = None
    for p in products:
        added = product_added(person, t_ms, p["product_id"], p["price"], p["quantity"])
        state = apply_event(state, parse_event(as_json(added)), policy).state
    assert state is not None and state.next_reminder_ms is not None
    (trigger,) = fire_timer(state, person, state.next_reminder_ms, policy).triggers
    return trigger.to_json()


def browse_trigger_json(
    trigger_type: str = "browse_abandonment", person: str = "ann", t_ms: int = BEGINNING, views: int = 3
) -> bytes:
    """The clickstream job's browse trigger for a session of ``views`` views of ``p1`` (category ``shoes``) from
    ``t_ms``.

    It fires when the session closes, 30 minutes after the last view; the session starts at ``t_ms``.
    """
    events = [parse_event(as_json(product_viewed(person, t_ms + i * SECOND, "p1", "shoes"))) for i in range(views)]
    policy = BrowsePolicy(high_intent_threshold=10)  # three repeat views score 18.13
    summary = summarize(person, events, IntentWeights(), policy)
    triggers = session_end_triggers(summary, summary.as_of_ms + 30 * MINUTE, policy)
    (trigger,) = [t for t in triggers if t.trigger_type == trigger_type]
    return trigger.to_json()


def _fingerprint(properties: Mapping[str, Any] | None) -> str:
    """Short, stable digest of the properties, so events differing only in content get different ids."""
    text = json.dumps(properties or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
