"""Browse-abandonment and high-intent triggers are a function of the events, not of their arrival.

Hypothesis draws a few hours of browsing for a few shoppers (product and category pages, now and then a cart
add, duplicates), shuffles their arrival within the lateness bound and interleaves random watermarks that never
make an event late. The pure session steps (``udfs.sessions.join``/``close_until``) run under a stand-in for
Flink's keyed timers, as ``udfs/flink/clickstream.py`` drives them; their triggers must be those of a batch model:
each person's events sorted, cut where two neighbours are a gap or more apart, every session scored once.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.arrivals import arrivals
from tests.support.events import BEGINNING, MINUTE, as_json, category_page_viewed, product_added, product_viewed
from udfs.events import parse_event
from udfs.intent import BrowsePolicy, IntentWeights, session_end_triggers, summarize
from udfs.sessions import PendingEvent, close_until, join

GAP_MS = 30 * MINUTE
WEIGHTS = IntentWeights()
POLICY = BrowsePolicy(min_product_views=2, min_category_views=3, high_intent_threshold=40.0)

Trigger = tuple[str, str, int]  # (trigger id, type, fired at)


@dataclass
class IntentStep:
    """The intent operator: pending events and one timer per distinct time, per person."""

    pending: dict[str, tuple[PendingEvent, ...]] = field(default_factory=dict)
    timers: set[tuple[int, str]] = field(default_factory=set)
    watermark: int = -(2**63)
    triggers: list[Trigger] = field(default_factory=list)
    late: int = 0

    def event(self, doc: Mapping[str, Any]) -> None:
        payload = as_json(doc).decode()
        event = parse_event(payload)
        if event.event_time_ms <= self.watermark:
            self.late += 1
            return
        joined = join(self.pending.get(event.person_id, ()), PendingEvent(event.event_time_ms, payload), GAP_MS)
        self.pending[event.person_id] = joined.pending
        self.timers.add((joined.timer_ms, event.person_id))

    def advance(self, watermark: int) -> None:
        self.watermark = watermark
        due = sorted(timer for timer in self.timers if timer[0] <= watermark)
        heapq.heapify(due)
        while due:
            at, person = heapq.heappop(due)
            self.timers.discard((at, person))
            still_open, closed = close_until(self.pending.get(person, ()), GAP_MS, at)
            self.pending[person] = still_open
            for session in closed:
                summary = summarize(person, (parse_event(e.payload) for e in session.events), WEIGHTS, POLICY)
                found = session_end_triggers(summary, session.end_ms, POLICY)
                self.triggers += [(t.trigger_id, t.trigger_type, t.fired_at_ms) for t in found]


def batch_model(docs: list[dict[str, Any]]) -> list[Trigger]:
    """Every person's sessions from all their events at once, each scored when it is complete."""
    by_person: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for doc in docs:
        event = parse_event(as_json(doc))
        by_person[event.person_id].append((event.event_time_ms, as_json(doc).decode()))
    triggers: list[Trigger] = []
    for person, events in by_person.items():
        events.sort()
        groups: list[list[tuple[int, str]]] = []
        for event in events:
            if groups and event[0] - groups[-1][-1][0] < GAP_MS:
                groups[-1].append(event)
            else:
                groups.append([event])
        for group in groups:
            summary = summarize(person, (parse_event(payload) for _, payload in group), WEIGHTS, POLICY)
            found = session_end_triggers(summary, group[-1][0] + GAP_MS, POLICY)
            triggers += [(t.trigger_id, t.trigger_type, t.fired_at_ms) for t in found]
    return sorted(triggers)


@st.composite
def browsing(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for shopper in range(draw(st.integers(1, 3))):
        person = f"shopper{shopper}"
        slots = draw(st.lists(st.integers(0, 8 * 60 // 5), min_size=1, max_size=12))  # 8 hours on a 5-minute grid
        for n, slot in enumerate(slots):
            t, mid = BEGINNING + slot * 5 * MINUTE, f"{person}-{n}"
            kind = draw(st.sampled_from(["product", "product", "category", "cart"]))
            if kind == "product":
                pid = draw(st.sampled_from(["shoe", "hat"]))
                docs.append(product_viewed(person, t, product_id=pid, category="wear", message_id=mid))
            elif kind == "category":
                docs.append(category_page_viewed(person, t, category="wear", message_id=mid))
            else:
                docs.append(product_added(person, t, product_id="shoe", message_id=mid))
    duplicated = draw(st.lists(st.sampled_from(range(len(docs))), max_size=3))
    return docs + [docs[i] for i in duplicated]


def _time(doc: Mapping[str, Any]) -> int:
    return parse_event(as_json(doc)).event_time_ms


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), docs=browsing(), bound_ms=st.sampled_from([0, 10 * MINUTE, 2 * GAP_MS, 4 * 60 * MINUTE]))
def test_any_arrival_and_watermark_schedule_gives_the_batch_models_session_triggers(data, docs, bound_ms):
    step = IntentStep()

    for kind, value in data.draw(arrivals(docs, _time, bound_ms, lookback_ms=4 * GAP_MS)):
        step.event(value) if kind == "event" else step.advance(value)

    expected = batch_model(docs)
    event(f"sessions with triggers: {'some' if expected else 'none'}")
    assert step.late == 0
    assert sorted(step.triggers) == expected
    assert step.timers == set()
    assert all(not events for events in step.pending.values())  # every session closed, its events dropped


def test_the_model_finds_a_browse_abandonment_and_none_for_a_session_with_a_cart():
    browsed = [product_viewed("ann", BEGINNING + n * MINUTE, product_id="shoe", message_id=f"v{n}") for n in range(3)]
    carted = [*browsed, product_added("ann", BEGINNING + 5 * MINUTE, product_id="shoe")]

    assert [kind for _, kind, _ in batch_model(browsed)] == ["browse_abandonment"]
    assert batch_model(carted) == []
