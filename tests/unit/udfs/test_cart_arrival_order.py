"""Any arrival order of the same events gives the same cart, timer and triggers as event-time order.

The property tests run every permutation of short scenarios (a seeded sample for long ones) through
apply_event, then fire the timers in order, and compare with the events sorted by (event time, message id).
Each scenario also states the cart it must end with, so a fold that is wrong in every order still fails.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.events import (
    BEGINNING,
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    as_json,
    cart_viewed,
    checkout_started,
    order_completed,
    product,
    product_added,
    product_removed,
)
from udfs.cart import NO_WATERMARK, CartPolicy, CartState, Reminder, apply_event, fire_timer
from udfs.cart_log import MAX_PENDING_OPS
from udfs.events import ClickEvent, parse_event

T0 = BEGINNING
POLICY = CartPolicy(
    reminders=(Reminder(HOUR, "cart_reminder_1"), Reminder(DAY, "cart_reminder_2")),
    cooldown_ms=0,
    max_reminders=2,
    dedup_window=16,
)
FULL_PERMUTATIONS_UP_TO = 7
SAMPLED_ORDERS = 300


@dataclass(frozen=True)
class Outcome:
    """Everything observable about one run: the cart, the pending timer, and the triggers fired afterwards."""

    state: CartState | None
    lines: list[tuple[str, int, float]]
    cart_id: str | None
    currency: str | None
    next_reminder_ms: int | None
    triggers: list[bytes]


def clicks(docs: Iterable[Mapping[str, Any]]) -> list[ClickEvent]:
    return [parse_event(as_json(doc)) for doc in docs]


def in_event_time_order(events: Sequence[ClickEvent]) -> list[ClickEvent]:
    return sorted(events, key=lambda event: (event.event_time_ms, event.message_id))


def tightest_watermarks(events: Sequence[ClickEvent]) -> list[int]:
    """Before each event, the highest watermark under which no event still to arrive is late (at or behind it)."""
    return [min(event.event_time_ms for event in events[i:]) - 1 for i in range(len(events))]


def play(events: Sequence[ClickEvent], watermarks: Sequence[int] | None = None, policy: CartPolicy = POLICY) -> Outcome:
    state: CartState | None = None
    for position, event in enumerate(events):
        watermark = NO_WATERMARK if watermarks is None else watermarks[position]
        state = apply_event(state, event, policy, watermark_ms=watermark).state
    pending = state
    triggers: list[bytes] = []
    while state is not None and state.next_reminder_ms is not None:
        timer = state.next_reminder_ms
        decision = fire_timer(state, "ann", timer, policy, watermark_ms=timer)
        triggers += [trigger.to_json() for trigger in decision.triggers]
        state = decision.state
    return Outcome(
        state=pending,
        lines=[] if pending is None else [(p, i.quantity, i.price) for p, i in pending.items.items()],
        cart_id=None if pending is None else pending.cart_id,
        currency=None if pending is None else pending.currency,
        next_reminder_ms=None if pending is None else pending.next_reminder_ms,
        triggers=triggers,
    )


def arrival_orders(events: Sequence[ClickEvent], seed: int) -> Iterator[tuple[ClickEvent, ...]]:
    if len(events) <= FULL_PERMUTATIONS_UP_TO:
        yield from itertools.permutations(events)
        return
    rng = random.Random(seed)
    yield tuple(reversed(events))
    for _ in range(SAMPLED_ORDERS):
        yield tuple(rng.sample(events, len(events)))


def long_mixed_stream() -> list[dict[str, Any]]:
    docs = [
        product_added("ann", T0, product_id="shoe", quantity=2, currency="EUR"),
        product_added("ann", T0 + 10 * SECOND, product_id="sock"),
        product_removed("ann", T0 + 20 * SECOND, product_id="shoe", quantity=1),
        cart_viewed("ann", T0 + 30 * SECOND, products=[product("shoe"), product("sock", quantity=3)]),
        product_added("ann", T0 + 40 * SECOND, product_id="hat", price=25.0),
        product_removed("ann", T0 + 40 * SECOND, product_id="sock", quantity=1),
        order_completed("ann", T0 + MINUTE),
        product_added("ann", T0 + 70 * SECOND, product_id="belt", price=30.0, cart_id="c2"),
        product_added("ann", T0 + 70 * SECOND, product_id="belt", price=30.0, cart_id="c2", message_id="belt-2"),
        product_removed("ann", T0 + 80 * SECOND, product_id="belt", quantity=1),
        checkout_started("ann", T0 + 90 * SECOND, products=[product("belt", price=30.0)], cart_id="c2"),
        product_added("ann", T0 + 100 * SECOND, product_id="cap", price=12.0, cart_id="c2"),
        product_removed("ann", T0 + 110 * SECOND, product_id="ghost"),
        product_added("ann", T0 + 120 * SECOND, product_id="cap", price=11.0, cart_id="c2"),
    ]
    return [*docs, docs[1], docs[7], docs[11]]  # duplicates, even of ops a reset superseded


# Each scenario: the events, then the cart they must give as (product, quantity), cart_id and currency.
SCENARIOS: dict[str, tuple[list[dict[str, Any]], list[tuple[str, int]], str | None, str]] = {
    "adds, removals before their adds, a duplicate": (
        [
            product_added("ann", T0, product_id="shoe", quantity=2),
            product_added("ann", T0 + 30 * SECOND, product_id="hat"),
            product_added("ann", T0 + MINUTE, product_id="sock"),
            product_added("ann", T0 + MINUTE, product_id="sock"),
            product_removed("ann", T0 + 2 * MINUTE, product_id="shoe", quantity=1),
            product_removed("ann", T0 + 3 * MINUTE, product_id="hat"),
        ],
        [("shoe", 1), ("sock", 1)],
        "c1",
        "USD",
    ),
    "an order, adds before and after it": (
        [
            product_added("ann", T0, product_id="shoe"),
            product_added("ann", T0 + MINUTE, product_id="hat"),
            product_added("ann", T0 + 2 * MINUTE, product_id="shoe", message_id="second-shoe"),
            order_completed("ann", T0 + 5 * MINUTE),
            product_added("ann", T0 + 6 * MINUTE, product_id="sock", quantity=2, cart_id="c2"),
            product_removed("ann", T0 + 7 * MINUTE, product_id="sock", quantity=1),
        ],
        [("sock", 1)],
        "c2",
        "USD",
    ),
    "snapshots supersede older changes, not newer ones": (
        [
            product_added("ann", T0, product_id="sock"),
            cart_viewed("ann", T0 + MINUTE, products=[product("shoe"), product("hat")]),
            product_added("ann", T0 + 2 * MINUTE, product_id="belt"),
            checkout_started("ann", T0 + 3 * MINUTE, products=[product("shoe", quantity=2)]),
            product_added("ann", T0 + 4 * MINUTE, product_id="sock"),
            product_removed("ann", T0 + 5 * MINUTE, product_id="shoe", quantity=1),
        ],
        [("shoe", 1), ("sock", 1)],
        "c1",
        "USD",
    ),
    "equal timestamps are ordered by message id": (
        [
            cart_viewed("ann", T0, products=[product("belt")], message_id="t0-0"),
            product_added("ann", T0, product_id="shoe", message_id="t0-1"),
            product_removed("ann", T0, product_id="shoe", message_id="t0-2"),
            product_removed("ann", T0, product_id="hat", message_id="t0-3"),  # before its add: removes nothing
            product_added("ann", T0, product_id="hat", message_id="t0-4"),
            product_added("ann", T0, product_id="shoe", message_id="t0-1"),  # duplicate
        ],
        [("belt", 1), ("hat", 1)],
        "c1",
        "USD",
    ),
    "cart id and currency: the newest writer wins": (
        [
            product_added("ann", T0, product_id="shoe", currency="EUR"),
            cart_viewed("ann", T0 + MINUTE, products=[product("shoe")], cart_id="c2"),  # no currency
            product_added("ann", T0 + 2 * MINUTE, product_id="hat", cart_id=None, currency=None),
            product_removed("ann", T0 + 3 * MINUTE, product_id="shoe", cart_id="c3"),  # removals write neither
            order_completed("ann", T0 - MINUTE),  # older than everything: superseded
        ],
        [("hat", 1)],
        "c2",
        "EUR",
    ),
    "a long mixed stream with duplicates": (long_mixed_stream(), [("belt", 1), ("cap", 2)], "c2", "USD"),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_arrival_order_gives_what_event_time_order_gives(name):
    docs, cart, cart_id, currency = SCENARIOS[name]
    events = clicks(docs)
    expected = play(in_event_time_order(events))
    assert [(product_id, quantity) for product_id, quantity, _ in expected.lines] == cart
    assert (expected.cart_id, expected.currency) == (cart_id, currency)
    assert expected.triggers  # the scenario does reach a reminder, so the trigger comparison means something

    for arrival in arrival_orders(events, seed=len(name)):
        outcome = play(arrival)
        assert outcome.lines == expected.lines, arrival
        assert (outcome.cart_id, outcome.currency) == (expected.cart_id, expected.currency)
        assert outcome.next_reminder_ms == expected.next_reminder_ms
        assert outcome.triggers == expected.triggers
        assert outcome.state.log == expected.state.log  # same base, same pending ops: nothing left to diverge


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_compacting_below_the_watermark_gives_the_same_results(name):
    events = clicks(SCENARIOS[name][0])
    expected = play(in_event_time_order(events))

    for arrival in arrival_orders(events, seed=len(name) + 1):
        outcome = play(arrival, tightest_watermarks(arrival))
        assert (outcome.lines, outcome.cart_id, outcome.currency) == (
            expected.lines,
            expected.cart_id,
            expected.currency,
        )
        assert (outcome.next_reminder_ms, outcome.triggers) == (expected.next_reminder_ms, expected.triggers)
        assert len(outcome.state.log.ops) <= len(expected.state.log.ops)


def test_in_order_arrival_with_the_tightest_watermark_keeps_no_op_pending_but_the_newest():
    events = in_event_time_order(clicks(SCENARIOS["adds, removals before their adds, a duplicate"][0]))

    outcome = play(events, tightest_watermarks(events))

    assert [op.event_time_ms for op in outcome.state.log.ops] == [T0 + 3 * MINUTE]


# --- the cases the issue names -------------------------------------------------------------------------------------


def run(*docs: Mapping[str, Any], state: CartState | None = None, watermark_ms: int = NO_WATERMARK) -> CartState:
    for event in clicks(docs):
        state = apply_event(state, event, POLICY, watermark_ms=watermark_ms).state
    assert state is not None
    return state


def quantities(state: CartState) -> dict[str, int]:
    return {product_id: item.quantity for product_id, item in state.items.items()}


def test_a_removal_arriving_before_its_add_still_removes_it():
    add = product_added("ann", T0, product_id="shoe", quantity=3)
    removal = product_removed("ann", T0 + MINUTE, product_id="shoe", quantity=2)

    state = run(removal)
    decision = apply_event(state, clicks([add])[0], POLICY)

    assert quantities(state) == {}
    assert decision.cart_changed
    assert quantities(decision.state) == {"shoe": 1} == quantities(run(add, removal))


def test_an_add_and_its_removal_cancelling_out_never_report_a_cart_change():
    removal = apply_event(None, clicks([product_removed("ann", T0 + MINUTE, product_id="shoe")])[0], POLICY)
    add_doc = product_added("ann", T0, product_id="shoe", cart_id=None)  # a cart id would be news of its own
    add = apply_event(removal.state, clicks([add_doc])[0], POLICY)

    assert not removal.cart_changed and not add.cart_changed  # so no profile write either time
    assert quantities(add.state) == {}


def test_an_order_arriving_after_a_newer_add_keeps_that_add():
    older = product_added("ann", T0, product_id="shoe")
    newer = product_added("ann", T0 + 10 * MINUTE, product_id="hat", cart_id="c2")
    order = order_completed("ann", T0 + 5 * MINUTE)

    decision = apply_event(run(older, newer), clicks([order])[0], POLICY)

    assert decision.cart_changed
    assert quantities(decision.state) == {"hat": 1} == quantities(run(older, order, newer))
    assert decision.state.cart_id == "c2"
    assert decision.state.next_reminder_ms == T0 + 10 * MINUTE + HOUR  # the newer add's reminder is still armed


def test_an_op_older_than_a_pending_reset_changes_no_line_and_no_timer():
    state = run(
        order_completed("ann", T0 + 5 * MINUTE), cart_viewed("ann", T0 + 10 * MINUTE, products=[product("hat")])
    )

    for stale in (
        product_added("ann", T0 + 7 * MINUTE, product_id="shoe"),
        product_removed("ann", T0 + 8 * MINUTE, product_id="hat"),
        order_completed("ann", T0 + 9 * MINUTE),
    ):
        decision = apply_event(state, clicks([stale])[0], POLICY)
        assert not decision.cart_changed
        assert quantities(decision.state) == {"hat": 1}
        assert decision.state.log.latest == state.log.latest
        assert decision.state.cart_id == "c1"  # a stale order cannot clear the newer snapshot's cart id
        assert decision.state.next_reminder_ms == state.next_reminder_ms


def test_compaction_keeps_the_log_within_the_out_of_orderness_window():
    lag = 30 * SECOND
    docs = [product_added("ann", T0 + n * SECOND, product_id=f"p{n % 7}") for n in range(600)]
    docs += [
        product_removed("ann", T0 + n * SECOND + 500, product_id=f"p{n % 7}", quantity=1) for n in range(0, 600, 3)
    ]
    events = in_event_time_order(clicks(docs))

    state: CartState | None = None
    longest = 0
    for event in events:
        state = apply_event(state, event, POLICY, watermark_ms=event.event_time_ms - lag).state
        longest = max(longest, len(state.log.ops))

    assert longest <= 31 + 11  # one add a second and a removal every third, over 30 s
    assert quantities(state) == dict(
        Counter(f"p{n % 7}" for n in range(600)) - Counter(f"p{n % 7}" for n in range(0, 600, 3))
    )


def test_the_hard_cap_bounds_the_log_without_a_watermark():
    docs = [product_added("ann", T0 + n, product_id=f"p{n}") for n in range(MAX_PENDING_OPS + 40)]

    state = run(*docs)
    late = apply_event(state, clicks([product_removed("ann", T0 + 10, product_id="p10")])[0], POLICY)
    recent = apply_event(state, clicks([product_removed("ann", T0 + 60, product_id="p60")])[0], POLICY)

    assert len(state.log.ops) == MAX_PENDING_OPS
    assert len(state.items) == MAX_PENDING_OPS + 40  # nothing lost: the oldest ops went into the base
    assert not late.cart_changed  # older than what the cap folded in: treated like a late event
    assert recent.cart_changed and "p60" not in recent.state.items  # still pending: applied in its place
