"""The plain-Python baseline's steps (bench/baseline/steps.py) without Kafka or Redis: the paths the benchmark's
workload never takes (bad, late and cart-rejected records), and timers firing as the watermark passes them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from bench.baseline.logic import load_logic
from bench.baseline.steps import PartitionSteps
from bench.baseline.timers import TimerQueue
from connectors.redis import GuardedFields, ProfileStore
from tests.support.events import BEGINNING, DAY, HOUR, SECOND, as_json, event, page_viewed, product_added

OUT_OF_ORDERNESS = 30 * SECOND


class _Store(ProfileStore):
    """Keeps the writes instead of sending them."""

    def __init__(self) -> None:
        super().__init__("redis://unused")
        self.writes: list[tuple[str, GuardedFields]] = []
        self.history: list[tuple[str, dict[str, Any]]] = []

    def write_groups(self, person_id: str, groups: Sequence[GuardedFields]) -> int:
        self.writes.extend((person_id, g) for g in groups)
        return 2 ** len(groups) - 1

    def record_trigger(self, person_id: str, trigger: Mapping[str, Any]) -> None:
        self.history.append((person_id, dict(trigger)))


class _Outputs:
    def __init__(self) -> None:
        self.triggers: list[dict[str, Any]] = []
        self.dead_letters: list[dict[str, Any]] = []

    def trigger(self, value: bytes) -> None:
        self.triggers.append(json.loads(value))

    def dead_letter(self, value: bytes) -> None:
        self.dead_letters.append(json.loads(value))


@pytest.fixture(scope="module")
def logic():
    return load_logic()


def _steps(logic) -> tuple[PartitionSteps, _Store, _Outputs]:
    store, outputs = _Store(), _Outputs()
    return PartitionSteps(logic, store, outputs), store, outputs


def _send(steps: PartitionSteps, doc: Mapping[str, Any]) -> None:
    steps.on_record(as_json(doc).decode())


def test_the_shipped_out_of_orderness_is_what_these_tests_assume(logic):
    assert logic.out_of_orderness_ms == OUT_OF_ORDERNESS


def test_a_reminder_fires_once_the_watermark_passes_it_and_the_rest_at_the_end_of_input(logic):
    steps, store, outputs = _steps(logic)
    _send(steps, product_added("ann", BEGINNING))
    due = BEGINNING + HOUR  # the first reminder, an hour after the last change
    _send(steps, page_viewed("bob", due + OUT_OF_ORDERNESS))  # watermark: due - 1
    assert outputs.triggers == []
    _send(steps, page_viewed("bob", due + OUT_OF_ORDERNESS + 1))  # watermark: due
    assert [(t["person_id"], t["reminder_index"], t["fired_at_ms"]) for t in outputs.triggers] == [("ann", 1, due)]

    steps.finish()
    assert [(t["reminder_index"], t["fired_at_ms"]) for t in outputs.triggers] == [(1, due), (2, BEGINNING + DAY)]
    assert [(p, h["template"]) for p, h in store.history] == [("ann", "cart_reminder_1"), ("ann", "cart_reminder_2")]
    carts = [(p, g.guard_ms) for p, g in store.writes if g.guard_field == "cart_updated_ms"]
    assert carts == [("ann", BEGINNING)]
    assert {p for p, g in store.writes if g.guard_field == "scored_at_ms"} == {"ann", "bob"}
    assert len(steps.timers) == 0 and steps.carts == {} and steps.open_sessions == {}


def test_bad_late_and_cart_rejected_records_are_dead_lettered_under_their_stage(logic):
    steps, store, outputs = _steps(logic)
    steps.on_record("not json")
    _send(steps, page_viewed("ann", BEGINNING + 60 * SECOND))  # watermark: BEGINNING + 29,999 ms
    _send(steps, page_viewed("ann", BEGINNING + 29_999))  # at the watermark: late (Flink's rule)
    _send(steps, page_viewed("ann", BEGINNING + 30_000))  # just after it: on time
    nameless = event("track", "ann", BEGINNING + 40 * SECOND, name="Product Added", properties={"price": 5})
    _send(steps, nameless)  # no product_id or sku: the cart step rejects it, the session still scores it

    assert [d["stage"] for d in outputs.dead_letters] == ["baseline.parse", "baseline.late", "baseline.cart"]
    assert "late: 0 ms behind the watermark" in outputs.dead_letters[1]["error"]
    assert (steps.counts.records, steps.counts.dead_letters, steps.counts.late) == (5, 3, 1)
    scored = [g.guard_ms for p, g in store.writes if g.guard_field == "scored_at_ms"]
    assert scored == [BEGINNING + 60 * SECOND] * 3  # the three on-time events, each rescoring the session
    assert steps.watermark == BEGINNING + 60 * SECOND - OUT_OF_ORDERNESS - 1


def test_identify_traits_go_into_the_profile_with_the_scores_in_one_write_and_a_late_identify_does_not(logic):
    steps, store, outputs = _steps(logic)
    identify = {**event("identify", "ann", BEGINNING + HOUR), "traits": {"email": "Ann@Example.com"}}
    _send(steps, identify)
    assert [(p, g.guard_field, g.guard_ms) for p, g in store.writes] == [
        ("ann", "scored_at_ms", BEGINNING + HOUR),
        ("ann", "traits_updated_ms", BEGINNING + HOUR),
    ]
    assert store.writes[1][1].fields["email"] == "ann@example.com"
    assert steps.counts.profile_writes == 1  # both groups under their own guards, one write (as the job does)

    _send(steps, {**event("identify", "ann", BEGINNING), "traits": {"email": "old@example.com"}})
    assert len(store.writes) == 2 and steps.counts.late == 1
    assert outputs.dead_letters[0]["stage"] == "baseline.late"


def test_without_watermarks_everything_is_decided_at_the_end_and_nothing_is_late(logic):
    store, outputs = _Store(), _Outputs()
    steps = PartitionSteps(logic, store, outputs, streaming=False)
    _send(steps, product_added("ann", BEGINNING))
    _send(steps, page_viewed("bob", BEGINNING + 2 * DAY))
    _send(steps, page_viewed("bob", BEGINNING))  # two days behind the newest: late only with watermarks
    assert outputs.triggers == [] and steps.counts.late == 0
    steps.finish()
    assert [(t["person_id"], t["reminder_index"]) for t in outputs.triggers] == [("ann", 1), ("ann", 2)]
    assert outputs.dead_letters == []


def test_timers_fire_once_each_in_time_order_and_deleted_ones_not_at_all():
    timers = TimerQueue()
    for at, key in [(30, "c"), (10, "a"), (20, "b"), (10, "a"), (40, "d")]:
        timers.register(0, key, at)
    timers.delete(0, "b", 20)
    timers.delete(0, "d", 40)
    timers.register(0, "d", 40)  # set again after a delete: fires once
    fired = []
    while (timer := timers.pop_due(40)) is not None:
        fired.append(timer)
    assert fired == [(10, 0, "a"), (30, 0, "c"), (40, 0, "d")]
    assert timers.pop_due(2**63 - 1) is None and len(timers) == 0
