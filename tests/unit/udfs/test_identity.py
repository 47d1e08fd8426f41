"""An anonymous cart follows the person after login: the device step replays it under the user."""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.support.events import (
    BEGINNING,
    MINUTE,
    anonymous,
    as_json,
    event,
    login,
    order_completed,
    page_viewed,
    product_added,
)
from udfs.cart import CART_TRANSFERRED, NO_WATERMARK, CartPolicy, CartState, Reminder, apply_event
from udfs.events import parse_event
from udfs.identity import DeviceState, Routed, route

POLICY = CartPolicy(
    reminders=(Reminder(delay_ms=60 * MINUTE, template="cart_reminder_1"),),
    cooldown_ms=0,
    max_reminders=1,
    dedup_window=64,
)
DEVICE = "browser-1"


def run(
    docs: list[dict[str, Any]], max_events: int = 100, watermark_ms: int = NO_WATERMARK
) -> tuple[DeviceState | None, list[Routed]]:
    """Route events of one device in order, as the keyed device step does."""
    state: DeviceState | None = None
    routed: list[Routed] = []
    for doc in docs:
        payload = as_json(doc).decode()
        state, out = route(state, parse_event(payload), payload, max_events, watermark_ms)
        routed += out
    return state, routed


def carts(routed: list[Routed]) -> dict[str, CartState | None]:
    """Fold what was routed into one cart per person, as the cart step does."""
    states: dict[str, CartState | None] = {}
    for r in routed:
        states[r.person_id] = apply_event(states.get(r.person_id), parse_event(r.payload), POLICY).state
    return states


def test_the_anonymous_cart_moves_to_the_user_at_login():
    adds = [anonymous(product_added("x", BEGINNING + n * MINUTE, product_id=f"p{n}"), DEVICE) for n in range(2)]

    state, routed = run([*adds, login("ann", BEGINNING + 5 * MINUTE, DEVICE)])

    result = carts(routed)
    assert sorted(result["ann"].items) == ["p0", "p1"]
    assert not result[DEVICE].items and result[DEVICE].log.latest.closed  # no reminder for the anonymous copy
    assert (state.linked_to, state.pending) == ("ann", [])
    moved = [r for r in routed if r.person_id == "ann" and json.loads(r.payload)["type"] == "track"]
    assert [json.loads(r.payload)["messageId"] for r in moved] == [a["messageId"] for a in adds]
    assert [r.event_time_ms for r in moved] == [BEGINNING + 5 * MINUTE] * 2  # they join the user's cart at login
    assert [json.loads(r.payload)["cartpulseMerged"] for r in moved] == [
        {"at_ms": BEGINNING + 5 * MINUTE, "from": DEVICE}
    ] * 2


def test_the_moved_cart_is_the_same_whatever_order_the_device_sent_it_in():
    adds = [anonymous(product_added("x", BEGINNING + n * MINUTE, product_id=f"p{n % 2}"), DEVICE) for n in range(3)]
    seen = set()
    for order in itertools.permutations(adds):
        cart = carts(run([*order, login("ann", BEGINNING + 9 * MINUTE, DEVICE)])[1])["ann"]
        seen.add(tuple(sorted((i.product_id, i.quantity) for i in cart.items.values())))
    assert seen == {(("p0", 2), ("p1", 1))}


def test_it_joins_a_cart_the_user_already_had():
    user_cart = product_added("ann", BEGINNING, product_id="shoe")
    _, routed = run(
        [
            anonymous(product_added("x", BEGINNING + MINUTE, product_id="hat"), DEVICE),
            login("ann", BEGINNING + 2 * MINUTE, DEVICE),
        ]
    )

    payload = as_json(user_cart).decode()
    result = carts([Routed("ann", BEGINNING, payload), *routed])

    assert sorted(result["ann"].items) == ["hat", "shoe"]


def test_events_a_linked_device_sends_under_its_own_id_are_relabelled():
    late_add = anonymous(product_added("x", BEGINNING + 3 * MINUTE, product_id="p9"), DEVICE)

    state, routed = run([login("ann", BEGINNING, DEVICE), late_add])

    assert routed[-1].person_id == "ann"
    assert json.loads(routed[-1].payload)["personId"] == "ann"
    assert (state.linked_to, state.pending) == ("ann", [])


def test_events_the_collector_already_resolved_pass_through_untouched():
    resolved = {**product_added("ann", BEGINNING), "anonymousId": DEVICE, "personId": "ann"}
    payload = as_json(resolved).decode()

    state, out = route(None, parse_event(payload), payload, 100)

    assert (state, out) == (None, [Routed("ann", BEGINNING, payload)])


def test_only_cart_events_are_kept_and_nothing_is_sent_when_there_was_no_cart():
    state, routed = run([anonymous(page_viewed("x", BEGINNING), DEVICE), login("ann", BEGINNING + MINUTE, DEVICE)])

    assert [r.person_id for r in routed] == [DEVICE, "ann"]  # the page view as is, then the identify
    assert not any(CART_TRANSFERRED in r.payload for r in routed)
    assert (state.linked_to, state.pending) == ("ann", [])


def test_an_order_behind_the_watermark_drops_what_came_before_it():
    docs = [
        anonymous(product_added("x", BEGINNING, product_id="old"), DEVICE),
        anonymous(order_completed("x", BEGINNING + MINUTE), DEVICE),
        anonymous(product_added("x", BEGINNING + 2 * MINUTE, product_id="new"), DEVICE),
    ]

    state, _ = run(docs, watermark_ms=BEGINNING + MINUTE)
    ahead, _ = run(docs, watermark_ms=BEGINNING + MINUTE - 1)

    assert [p[1] for p in state.pending] == [docs[1]["messageId"], docs[2]["messageId"]]
    # An order the watermark has not passed may be at or after a login still to come, whose moved cart is
    # made of what came before the login: nothing is dropped yet.
    assert [p[1] for p in ahead.pending] == [doc["messageId"] for doc in docs]


def test_at_most_max_events_are_kept_oldest_dropped_first():
    docs = [anonymous(product_added("x", BEGINNING + n * MINUTE, product_id=f"p{n}"), DEVICE) for n in range(5)]

    state, _ = run(docs, max_events=3)

    assert [p[0] for p in state.pending] == [BEGINNING + n * MINUTE for n in (2, 3, 4)]
    assert state.dropped == 2


def test_an_alias_moves_the_cart_of_its_previous_id():
    alias = {**event("alias", "ann", BEGINNING + MINUTE), "previousId": DEVICE, "personId": "ann"}
    del alias["anonymousId"]

    _, routed = run([anonymous(product_added("x", BEGINNING, product_id="hat"), DEVICE), alias])

    assert sorted(carts(routed)["ann"].items) == ["hat"]


def test_the_state_survives_its_json_form():
    state, _ = run([anonymous(product_added("x", BEGINNING, product_id="hat"), DEVICE)])

    assert DeviceState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_calls_with_only_a_user_id_are_never_held_as_anonymous():
    doc = product_added("ann", BEGINNING)
    del doc["anonymousId"]
    payload = as_json(doc).decode()

    state, out = route(None, parse_event(payload), payload, 100)

    assert (state, out) == (None, [Routed("ann", BEGINNING, payload)])
