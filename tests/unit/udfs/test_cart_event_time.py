"""Triggers are a function of the events: any arrival order within the bound, any watermark schedule.

Hypothesis draws multi-day histories for a few shoppers (some fill a cart in a browser before logging in,
some buy, some come back), duplicates some events, shuffles their arrival within the lateness bound and
interleaves random watermarks that never make an event late. The pure login step (``udfs.identity.route``)
and cart step (``udfs.cart``) run under a small stand-in for Flink's keyed timer service, and their triggers
must be exactly those of the batch model in ``demo/cart_model.py``, written apart from ``udfs/``.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from demo.cart_model import ModelPolicy, ModelTrigger, expected_triggers
from tests.support.arrivals import arrivals
from tests.support.events import (
    BEGINNING,
    DAY,
    HOUR,
    MINUTE,
    anonymous,
    as_json,
    cart_viewed,
    login,
    order_completed,
    product,
    product_added,
    product_removed,
)
from udfs.cart import CartPolicy, CartState, Reminder, apply_event, fire_timer
from udfs.events import parse_event
from udfs.identity import DeviceState, route

GRID_MS = 10 * MINUTE  # event times on a grid, so ties (an op exactly at a due time) happen often
PRODUCTS = ("shoe", "hat", "sock")


@dataclass
class Job:
    """The clickstream job's login and cart steps with one timer per person, fed events and watermarks in order."""

    policy: CartPolicy
    devices: dict[str, DeviceState | None] = field(default_factory=dict)
    carts: dict[str, CartState | None] = field(default_factory=dict)
    timers: dict[str, int] = field(default_factory=dict)
    watermark: int = -(2**63)
    triggers: list[ModelTrigger] = field(default_factory=list)
    trigger_ids: list[str] = field(default_factory=list)
    late: int = 0

    def event(self, doc: Mapping[str, Any]) -> None:
        payload = as_json(doc).decode()
        event = parse_event(payload)
        device_state, routed = route(self.devices.get(event.device_id), event, payload, 256, self.watermark)
        self.devices[event.device_id] = device_state
        for row in routed:
            self._cart_event(row.person_id, event.event_time_ms, row.payload)

    def advance(self, watermark: int) -> None:
        """Flink's advance: every timer at or before the watermark fires, in time order, new ones too."""
        self.watermark = watermark
        queue = [(at, person) for person, at in self.timers.items() if at <= watermark]
        heapq.heapify(queue)
        while queue:
            at, person = heapq.heappop(queue)
            if self.timers.get(person) != at:
                continue
            del self.timers[person]
            decision = fire_timer(self.carts.get(person), person, at, self.policy, watermark_ms=watermark)
            self._carry_out(person, decision.state, decision.triggers)
            if person in self.timers and self.timers[person] <= watermark:
                heapq.heappush(queue, (self.timers[person], person))

    def _cart_event(self, person: str, element_ms: int, payload: str) -> None:
        if element_ms <= self.watermark:
            self.late += 1
            return
        decision = apply_event(self.carts.get(person), parse_event(payload), self.policy, watermark_ms=self.watermark)
        self._carry_out(person, decision.state, decision.triggers)

    def _carry_out(self, person: str, state: CartState | None, triggers: Sequence[Any]) -> None:
        self.carts[person] = state
        if state is not None and state.next_reminder_ms is not None:
            self.timers[person] = state.next_reminder_ms
        else:
            self.timers.pop(person, None)
        for t in triggers:
            self.triggers.append(ModelTrigger(t.person_id, t.reminder_index, t.fired_at_ms, _lines(t.items)))
            self.trigger_ids.append(t.trigger_id)


def _lines(items: Sequence[Any]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((item.product_id, item.quantity) for item in items))


# --- generated histories -------------------------------------------------------------------------------------------


@st.composite
def cart_event(draw: st.DrawFn, person: str, t_ms: int, n: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["add", "add", "add", "remove", "snapshot", "order", "view"]))
    pid = draw(st.sampled_from(PRODUCTS))
    mid = f"{person}-{n}"
    if kind == "add":
        return product_added(person, t_ms, product_id=pid, quantity=draw(st.integers(1, 2)), message_id=mid)
    if kind == "remove":
        quantity = draw(st.sampled_from([None, 1]))
        return product_removed(person, t_ms, product_id=pid, quantity=quantity, message_id=mid)
    if kind == "snapshot":
        lines = draw(st.lists(st.sampled_from(PRODUCTS), unique=True, max_size=2))
        return cart_viewed(person, t_ms, products=[product(p, quantity=2) for p in lines], message_id=mid)
    if kind == "view":
        return cart_viewed(person, t_ms, message_id=mid)  # no products: changes nothing
    return order_completed(person, t_ms, message_id=mid)


@st.composite
def history(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few shoppers over up to three days; some start in a browser and log in part-way."""
    docs: list[dict[str, Any]] = []
    for shopper in range(draw(st.integers(1, 3))):
        user, device = f"user{shopper}", f"browser{shopper}"
        times = sorted(draw(st.lists(st.integers(0, 3 * DAY // GRID_MS), min_size=1, max_size=8)))
        login_at = draw(st.one_of(st.none(), st.integers(0, 3 * DAY // GRID_MS)))
        for n, slot in enumerate(times):
            doc = draw(cart_event(user, BEGINNING + slot * GRID_MS, n))
            before_login = login_at is not None and slot < login_at
            if before_login or (login_at is not None and draw(st.booleans())):
                doc = anonymous(doc, device)  # a browser's own event (after the login, a straggler of it)
            docs.append(doc)
        if login_at is not None:
            docs.append(login(user, BEGINNING + login_at * GRID_MS, device))
    duplicated = draw(st.lists(st.sampled_from(range(len(docs))), max_size=3)) if docs else []
    return docs + [docs[i] for i in duplicated]


def _time(doc: Mapping[str, Any]) -> int:
    return parse_event(as_json(doc)).event_time_ms


policies = st.builds(
    lambda delays, cooldown, max_reminders: (delays, cooldown, max_reminders),
    st.sampled_from([(30 * MINUTE,), (30 * MINUTE, DAY), (HOUR, 2 * HOUR, DAY)]),
    st.sampled_from([0, 2 * HOUR, 2 * DAY]),
    st.integers(1, 3),
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), docs=history(), shape=policies, bound_ms=st.sampled_from([0, HOUR, 6 * HOUR, DAY]))
def test_any_arrival_and_watermark_schedule_gives_the_batch_models_triggers(data, docs, shape, bound_ms):
    delays, cooldown, max_reminders = shape
    policy = CartPolicy(
        reminders=tuple(Reminder(d, f"cart_reminder_{i + 1}") for i, d in enumerate(delays)),
        cooldown_ms=cooldown,
        max_reminders=max_reminders,
        dedup_window=64,
    )
    job = Job(policy)

    for kind, step in data.draw(arrivals(docs, _time, bound_ms, lookback_ms=2 * DAY)):
        job.event(step) if kind == "event" else job.advance(step)

    expected = expected_triggers(docs, ModelPolicy(delays, cooldown, max_reminders))
    event(f"reminders: {'some' if expected else 'none'}")
    event(f"a browser logs in: {any(doc['type'] == 'identify' for doc in docs)}")
    assert job.late == 0
    assert sorted(job.triggers) == expected
    assert len(set(job.trigger_ids)) == len(job.trigger_ids)
    assert job.timers == {}
    assert all(state is None for state in job.carts.values())  # every cart's state is cleared in the end


# --- the model itself, on cases worked out by hand -----------------------------------------------------------------

MODEL = ModelPolicy((30 * MINUTE, DAY), cooldown_ms=0, max_reminders=2)


def test_the_model_reminds_a_left_cart_twice_and_a_bought_one_never():
    left = [product_added("ann", BEGINNING, product_id="shoe")]
    bought = [*left, order_completed("ann", BEGINNING + 10 * MINUTE)]

    assert [(t.reminder_index, t.due_ms) for t in expected_triggers(left, MODEL)] == [
        (1, BEGINNING + 30 * MINUTE),
        (2, BEGINNING + DAY),
    ]
    assert expected_triggers(bought, MODEL) == []


def test_the_model_sends_a_reminder_due_before_a_later_change_with_the_cart_as_it_was():
    docs = [
        product_added("ann", BEGINNING, product_id="shoe"),
        product_added("ann", BEGINNING + 2 * HOUR, product_id="hat"),  # after the first reminder was due
    ]

    first, *rest = expected_triggers(docs, MODEL)

    assert (first.due_ms, first.lines) == (BEGINNING + 30 * MINUTE, (("shoe", 1),))
    assert [(t.reminder_index, t.due_ms, t.lines) for t in rest] == [
        (1, BEGINNING + 2 * HOUR + 30 * MINUTE, (("hat", 1), ("shoe", 1))),
        (2, BEGINNING + 2 * HOUR + DAY, (("hat", 1), ("shoe", 1))),
    ]


def test_the_model_moves_a_browsers_cart_to_the_user_at_login():
    docs = [
        anonymous(product_added("x", BEGINNING, product_id="shoe"), "b1"),
        login("ann", BEGINNING + 10 * MINUTE, "b1"),
    ]

    assert [(t.person_id, t.due_ms) for t in expected_triggers(docs, MODEL)] == [
        ("ann", BEGINNING + 40 * MINUTE),
        ("ann", BEGINNING + 10 * MINUTE + DAY),
    ]


def test_the_early_event_that_used_to_cancel_a_due_reminder_no_longer_does():
    """The issue's case: the partition with the later order runs ahead of the watermark."""
    job = Job(CartPolicy((Reminder(30 * MINUTE, "cart_reminder_1"),), cooldown_ms=0, max_reminders=1, dedup_window=8))
    job.event(product_added("ann", BEGINNING, product_id="shoe"))
    job.event(order_completed("ann", BEGINNING + HOUR))  # arrives while the watermark is still before the due time
    job.advance(BEGINNING + 2 * HOUR)

    assert [(t.person_id, t.due_ms) for t in job.triggers] == [("ann", BEGINNING + 30 * MINUTE)]
