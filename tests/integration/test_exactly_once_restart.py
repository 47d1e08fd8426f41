"""A crash between checkpoints, then the same command again: each trigger exactly once.

The job runs as its own process (as under ``make run``) so the test can kill it with SIGKILL: no
clean shutdown, open Kafka transactions left behind, exactly what a lost TaskManager looks like.
It is started again exactly as before, naming no checkpoint: it finds its newest one itself
(jobs/recovery.py). Both clickstream jobs: the cart job's pending reminders and timers, the intent
job's open sessions and timers.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from tests.support.events import BEGINNING, DAY, HOUR, MINUTE, as_json, page_viewed, product_added, product_viewed
from tests.support.jobs import job_config, running_job, wait_for

pytestmark = pytest.mark.integration

PEOPLE_BEFORE = [f"early-{n}" for n in range(12)]
PEOPLE_AFTER = [f"late-{n}" for n in range(6)]

Events = Callable[[list[str], int], list[dict[str, Any]]]


def _job_config(job: str, tmp_path: Path, run_id: str, topics: dict[str, str]) -> Path:
    flink = {
        "execution.checkpointing.interval": "2s",
        "execution.checkpointing.dir": (tmp_path / "checkpoints").as_uri(),
    }
    return job_config(job, tmp_path, f"restart-{run_id}", topics, flink)


def _completed_checkpoints(root: Path) -> list[Path]:
    found = [p.parent for p in root.glob("*/chk-*/_metadata")]
    return sorted(found, key=_number)


def _number(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[1])


def _carts(people: list[str], t0: int) -> list[dict[str, Any]]:
    """Two adds per person: two cart reminders each."""
    events = []
    for n, person in enumerate(people):
        events.append(product_added(person, t0 + n * MINUTE, product_id=f"p{n}", price=10.0 + n))
        events.append(product_added(person, t0 + n * MINUTE + 5 * MINUTE, product_id="extra", price=1.0))
    return events


def _browsing(people: list[str], t0: int) -> list[dict[str, Any]]:
    """Three views of one product per person, no cart: one browse abandonment each."""
    return [
        product_viewed(person, t0 + n * MINUTE + v * MINUTE, product_id=f"p{n}")
        for n, person in enumerate(people)
        for v in range(3)
    ]


def _send(producer: KafkaProducer, topic: str, events: list[dict[str, Any]]) -> None:
    """Keyed by person and in event-time order, as a collector sends them: no partition then holds an event
    behind its own watermark."""
    for event in sorted(events, key=lambda e: e["timestamp"]):
        producer.send(topic, key=event["userId"].encode(), value=as_json(event))


def _clock_tick(producer: KafkaProducer, topic: str, t_ms: int, partitions: int) -> None:
    """An event on every partition far in event time, so the watermark passes every pending timer."""
    for partition in range(partitions):
        producer.send(topic, value=as_json(page_viewed(f"clock-{partition}-{t_ms}", t_ms)), partition=partition)
    producer.flush()


def _seen(kafka, topics: dict[str, str]) -> str:
    fired = sorted({(t["person_id"], t.get("reminder_index")) for t in kafka.read_json(topics["triggers"])})
    dead = [d.get("error") for d in kafka.read_json(topics["dead_letter"])]
    return f"triggers: {fired}\ndead letters: {dead}"


def _crash_and_restore(kafka, tmp_path: Path, run_id: str, job: str, events: Events, expected: int) -> list[dict]:
    """Run ``job`` over the early people's events, SIGKILL it after two checkpoints and some triggers, send the
    late people's events while it is down, restore it from the last checkpoint; returns the triggers."""
    topics = {"events": f"rs-events-{run_id}", "dead_letter": f"rs-dlq-{run_id}", "triggers": f"rs-triggers-{run_id}"}
    kafka.create_topics(*topics.values(), partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    _send(producer, topics["events"], events(PEOPLE_BEFORE, BEGINNING))
    _clock_tick(producer, topics["events"], BEGINNING + 3 * DAY, partitions=2)

    log = tmp_path / "job.log"
    checkpoints_dir = tmp_path / "checkpoints"

    def crash_ready() -> bool:
        checkpoints = _completed_checkpoints(checkpoints_dir)
        return len(kafka.read_json(topics["triggers"])) >= 4 and bool(checkpoints) and _number(checkpoints[-1]) >= 2

    config = _job_config(job, tmp_path, run_id, topics)
    with running_job(job, config, log) as first:
        wait_for(crash_ready, [first], log, "triggers and two checkpoints")
    before_crash = kafka.read_json(topics["triggers"])
    assert 4 <= len(before_crash) < expected
    checkpoint = _completed_checkpoints(checkpoints_dir)[-1]

    # More traffic while the job is down; then the same command again.
    _send(producer, topics["events"], events(PEOPLE_AFTER, BEGINNING + 4 * DAY))
    _clock_tick(producer, topics["events"], BEGINNING + 7 * DAY, partitions=2)
    producer.close()

    def all_fired() -> bool:
        return len(kafka.read_json(topics["triggers"])) >= expected

    with running_job(job, config, log) as resumed:
        wait_for(all_fired, [resumed], log, f"{expected} committed triggers", explain=lambda: _seen(kafka, topics))
        time.sleep(5)  # a few more checkpoints: anything emitted twice would be committed by now
    assert f"resuming from checkpoint {checkpoint}" in log.read_text(errors="replace")

    triggers = kafka.read_json(topics["triggers"])
    counts = Counter(t["trigger_id"] for t in triggers)
    assert [tid for tid, n in counts.items() if n > 1] == [], "a trigger was emitted twice"
    return triggers


def test_cart_job_restored_after_sigkill_emits_every_reminder_exactly_once(kafka, redis_client, run_id, tmp_path):
    expected = {(p, i) for p in PEOPLE_BEFORE + PEOPLE_AFTER for i in (1, 2)}
    triggers = _crash_and_restore(kafka, tmp_path, run_id, "cart_abandonment", _carts, len(expected))
    fired = {(t["person_id"], t["reminder_index"]) for t in triggers}
    assert fired == expected, f"missing: {sorted(expected - fired)}"
    assert len(triggers) == len(expected)
    first = next(t for t in triggers if t["person_id"] == "early-0" and t["reminder_index"] == 1)
    assert first["fired_at_ms"] == BEGINNING + 5 * MINUTE + HOUR


def test_intent_job_restored_after_sigkill_closes_every_session_exactly_once(kafka, redis_client, run_id, tmp_path):
    expected = {(p, "browse_abandonment") for p in PEOPLE_BEFORE + PEOPLE_AFTER}
    triggers = _crash_and_restore(kafka, tmp_path, run_id, "intent_scoring", _browsing, len(expected))
    fired = {(t["person_id"], t["trigger_type"]) for t in triggers}
    assert fired == expected, f"missing: {sorted(expected - fired)}"
    assert len(triggers) == len(expected)
