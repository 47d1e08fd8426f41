"""Which events the clickstream job sends through the login step (keyed by device), and why the rest may skip it.

The job routes only :func:`udfs.identity.needs_login_step` events through ``FollowLogins``; every other event goes
straight to the person's step. That is safe only if :func:`udfs.identity.route` would have sent every such event
on unchanged for the cart and left the device's state alone: checked here for each kind of event against every
kind of device state, and over random histories of several browsers against routing everything (as the old cart
job did).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.events import (
    BEGINNING,
    MINUTE,
    anonymous,
    as_json,
    cart_viewed,
    checkout_started,
    event,
    login,
    order_completed,
    page_viewed,
    product,
    product_added,
    product_removed,
    product_viewed,
)
from udfs.cart import CART_EVENTS, CART_TRANSFERRED, NO_WATERMARK
from udfs.events import ClickEvent, parse_event
from udfs.identity import DeviceState, Routed, needs_login_step, route

DEVICE = "browser-1"
T = BEGINNING + 10 * MINUTE


def parsed(doc: dict[str, Any]) -> ClickEvent:
    return parse_event(as_json(doc))


def resolved(doc: dict[str, Any], person: str = "ann") -> dict[str, Any]:
    """As the collector forwards a call from a browser it already knows to be ``person``'s."""
    return {**doc, "userId": person, "anonymousId": DEVICE, "personId": person}


def server_side(doc: dict[str, Any]) -> dict[str, Any]:
    """A call with only a userId, as server-side SDKs send them."""
    plain = {**doc, "personId": doc["userId"]}
    plain.pop("anonymousId", None)
    return plain


def alias(person: str, t_ms: int, previous: str) -> dict[str, Any]:
    doc = {**event("alias", person, t_ms), "previousId": previous, "personId": person}
    doc.pop("anonymousId")
    return doc


CART_OPS = {
    "Product Added": product_added("x", T, product_id="hat"),
    "Product Removed": product_removed("x", T, product_id="hat"),
    "Cart Viewed": cart_viewed("x", T, products=[product("hat")]),
    "Checkout Started": checkout_started("x", T, products=[product("hat")]),
    "Order Completed": order_completed("x", T),
}
OTHERS = {
    "page": page_viewed("x", T),
    "Product Viewed": product_viewed("x", T, product_id="hat", category="hats"),
}

NEEDS_IT = {
    "an identify linking the browser": login("ann", T, DEVICE),
    "an alias linking a previous id": alias("ann", T, DEVICE),
    **{f"an anonymous {name}": anonymous(doc, DEVICE) for name, doc in CART_OPS.items()},
    "an anonymous Cart Viewed without products (a cart event by its name)": anonymous(cart_viewed("x", T), DEVICE),
}
SKIPS_IT = {
    "an identify with only a userId": server_side(event("identify", "ann", T)),
    "an identify the collector resolved to the same person": resolved(event("identify", "ann", T), "ann")
    | {"anonymousId": "ann"},
    **{f"a resolved {name}": resolved(doc) for name, doc in CART_OPS.items()},
    **{f"a server-side {name}": server_side({**doc, "userId": "ann"}) for name, doc in CART_OPS.items()},
    **{f"an anonymous {name}": anonymous(doc, DEVICE) for name, doc in OTHERS.items()},
    **{f"a resolved {name}": resolved(doc) for name, doc in OTHERS.items()},
}


def test_the_cart_ops_here_are_all_the_cart_events():
    assert set(CART_OPS) == set(CART_EVENTS)


@pytest.mark.parametrize("doc", NEEDS_IT.values(), ids=NEEDS_IT.keys())
def test_links_and_anonymous_cart_events_need_the_login_step(doc):
    assert needs_login_step(parsed(doc))


@pytest.mark.parametrize("doc", SKIPS_IT.values(), ids=SKIPS_IT.keys())
def test_everything_else_skips_it(doc):
    assert not needs_login_step(parsed(doc))


DEVICE_STATES = {
    "no state": None,
    "an unlinked browser with a pending cart": route(
        None, parsed(anonymous(product_added("x", BEGINNING), DEVICE)), "{}", 100
    )[0],
    "a browser linked to ann": DeviceState("ann", BEGINNING, "m-login"),
    "a browser linked to bo": DeviceState("bo", BEGINNING, "m-login"),
}


@pytest.mark.parametrize("state", DEVICE_STATES.values(), ids=DEVICE_STATES.keys())
@pytest.mark.parametrize("doc", SKIPS_IT.values(), ids=SKIPS_IT.keys())
def test_the_login_step_would_change_nothing_for_the_cart_of_an_event_that_skips_it(doc, state):
    """What the step would do with it: keep the device's state, and send a cart op on as it is (a non-cart event
    it may relabel, which changes nothing: the cart ignores it)."""
    payload = as_json(doc).decode()
    event_ = parse_event(payload)
    after, routed = route(state, event_, payload, max_events=100)
    assert after is state
    as_is = Routed(event_.person_id, event_.event_time_ms, payload)
    assert [r for r in routed if _is_cart_op(r)] == ([as_is] if _is_cart_op(as_is) else [])


# Random histories of two browsers and their people, in any arrival order: routing only the events that need the
# login step gives every person's cart the same ops, in the same order, as routing every event through it.
_PEOPLE = {"browser-a": "ann", "browser-b": "bo"}


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs = []
    for n in range(draw(st.integers(1, 12))):
        browser = draw(st.sampled_from(sorted(_PEOPLE)))
        person = _PEOPLE[browser]
        t = BEGINNING + draw(st.integers(0, 30)) * MINUTE
        mid = f"m{n}"
        kind = draw(st.sampled_from(["add", "remove", "order", "view", "page", "login", "alias"]))
        if kind == "login":
            docs.append({**login(person, t, browser), "messageId": mid})
            continue
        if kind == "alias":
            docs.append(alias(person, t, browser) | {"messageId": mid})
            continue
        doc = {
            "add": product_added("x", t, product_id=draw(st.sampled_from(["hat", "cap"])), message_id=mid),
            "remove": product_removed("x", t, product_id="hat", message_id=mid),
            "order": order_completed("x", t, message_id=mid),
            "view": product_viewed("x", t, product_id="hat", message_id=mid),
            "page": page_viewed("x", t, message_id=mid),
        }[kind]
        who = draw(st.sampled_from(["anonymous", "resolved", "server-side"]))
        if who == "anonymous":
            docs.append(anonymous(doc, browser))
        elif who == "resolved":
            docs.append({**doc, "userId": person, "anonymousId": browser, "personId": person})
        else:
            docs.append(server_side({**doc, "userId": person}))
    return docs


@given(histories(), st.integers(NO_WATERMARK, BEGINNING + 40 * MINUTE) | st.just(NO_WATERMARK))
def test_routing_only_what_needs_the_login_step_gives_every_cart_the_same_ops(docs, watermark_ms):
    everything = _cart_ops(docs, watermark_ms, only_needed=False)
    needed = _cart_ops(docs, watermark_ms, only_needed=True)
    assert needed == everything


def _cart_ops(docs: list[dict[str, Any]], watermark_ms: int, only_needed: bool) -> dict[str, list[tuple[int, str]]]:
    """Per person, the cart ops that reach their cart, in arrival order (as the job's keyed step sees them)."""
    states: dict[str, DeviceState | None] = {}
    ops: dict[str, list[tuple[int, str]]] = {}
    for doc in docs:
        payload = as_json(doc).decode()
        event_ = parse_event(payload)
        if only_needed and not needs_login_step(event_):
            routed = [Routed(event_.person_id, event_.event_time_ms, payload)]
        else:
            states[event_.device_id], routed = route(states.get(event_.device_id), event_, payload, 100, watermark_ms)
        for r in routed:
            if _is_cart_op(r):
                ops.setdefault(r.person_id, []).append((r.event_time_ms, r.payload))
    return ops


def _is_cart_op(routed: Routed) -> bool:
    doc = json.loads(routed.payload)
    return doc["type"] == "track" and doc.get("event") in CART_EVENTS | {CART_TRANSFERRED}
