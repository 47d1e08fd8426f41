"""A crash between checkpoints, then the same command again: each trigger exactly once.

The job runs as its own process (as under ``make run``) so the test can kill it with SIGKILL: no
clean shutdown, open Kafka transactions left behind, exactly what a lost TaskManager looks like.
It is started again exactly as before, naming no checkpoint: it finds its newest one itself
(jobs/recovery.py). The clickstream job keeps both kinds of event-time state per person, carts with their
reminder timers and open sessions with theirs: some people fill carts, others only browse.
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
from tests.support.kafka import KafkaTestClient

pytestmark = pytest.mark.integration

PEOPLE_BEFORE = [f"early-{n}" for n in range(12)]
PEOPLE_AFTER = [f"late-{n}" for n in range(6)]

Events = Callable[[list[str], int], list[dict[str, Any]]]


def _job_config(tmp_path: Path, run_id: str, topics: dict[str, str]) -> Path:
    flink = {
        "execution.checkpointing.interval": "2s",
        "execution.checkpointing.dir": (tmp_path / "checkpoints").as_uri(),
    }
    return job_config("clickstream", tmp_path, f"restart-{run_id}", topics, flink)


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


def _viewers(people: list[str]) -> list[str]:
    return [f"viewer-{person}" for person in people]


def _history(people: list[str], t0: int) -> list[dict[str, Any]]:
    """``people`` fill carts while as many others only browse."""
    return _carts(people, t0) + _browsing(_viewers(people), t0)


def _send(kafka: KafkaTestClient, topic: str, events: list[dict[str, Any]]) -> None:
    """Keyed by person, stamped with their event time and in event-time order, as a collector sends them: no
    partition then holds an event behind its own watermark."""
    kafka.produce(topic, sorted(events, key=lambda e: e["timestamp"]))


def _clock_tick(producer: KafkaProducer, topic: str, t_ms: int, partitions: int) -> None:
    """An event on every partition far in event time, so the watermark passes every pending timer."""
    for partition in range(partitions):
        doc = page_viewed(f"clock-{partition}-{t_ms}", t_ms)
        producer.send(topic, value=as_json(doc), partition=partition, timestamp_ms=t_ms)
    producer.flush()


def _seen(kafka, topics: dict[str, str]) -> str:
    fired = sorted({(t["person_id"], t.get("reminder_index", 0)) for t in kafka.read_json(topics["triggers"])})
    dead = [d.get("error") for d in kafka.read_json(topics["dead_letter"])]
    return f"triggers: {fired}\ndead letters: {dead}"


def _crash_and_restore(kafka, tmp_path: Path, run_id: str, events: Events, expected: int) -> list[dict]:
    """Run the job over the early people's events, SIGKILL it after two checkpoints and some triggers, send the
    late people's events while it is down, restore it from the last checkpoint; returns the triggers."""
    topics = {"events": f"rs-events-{run_id}", "dead_letter": f"rs-dlq-{run_id}", "triggers": f"rs-triggers-{run_id}"}
    kafka.create_topics(topics["events"], partitions=2, create_time=True)
    kafka.create_topics(topics["dead_letter"], topics["triggers"], partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    _send(kafka, topics["events"], events(PEOPLE_BEFORE, BEGINNING))
    _clock_tick(producer, topics["events"], BEGINNING + 3 * DAY, partitions=2)

    log = tmp_path / "job.log"
    checkpoints_dir = tmp_path / "checkpoints"

    def crash_ready() -> bool:
        checkpoints = _completed_checkpoints(checkpoints_dir)
        return len(kafka.read_json(topics["triggers"])) >= 4 and bool(checkpoints) and _number(checkpoints[-1]) >= 2

    config = _job_config(tmp_path, run_id, topics)
    with running_job("clickstream", config, log) as first:
        wait_for(crash_ready, [first], log, "triggers and two checkpoints")
    before_crash = kafka.read_json(topics["triggers"])
    assert 4 <= len(before_crash) < expected
    checkpoint = _completed_checkpoints(checkpoints_dir)[-1]

    # More traffic while the job is down; then the same command again.
    _send(kafka, topics["events"], events(PEOPLE_AFTER, BEGINNING + 4 * DAY))
    _clock_tick(producer, topics["events"], BEGINNING + 7 * DAY, partitions=2)
    producer.close()

    def all_fired() -> bool:
        return len(kafka.read_json(topics["triggers"])) >= expected

    with running_job("clickstream", config, log) as resumed:
        wait_for(all_fired, [resumed], log, f"{expected} committed triggers", explain=lambda: _seen(kafka, topics))
        time.sleep(5)  # a few more checkpoints: anything emitted twice would be committed by now
    assert f"resuming from checkpoint {checkpoint}" in log.read_text(errors="replace")

    triggers = kafka.read_json(topics["triggers"])
    counts = Counter(t["trigger_id"] for t in triggers)
    assert [tid for tid, n in counts.items() if n > 1] == [], "a trigger was emitted twice"
    assert kafka.read_json(topics["dead_letter"]) == []
    return triggers


def test_restored_after_sigkill_the_job_fires_every_reminder_and_closes_every_session_exactly_once(
    kafka, redis_client, run_id, tmp_path
):
    people = PEOPLE_BEFORE + PEOPLE_AFTER
    expected = {(p, "cart_abandonment", i) for p in people for i in (1, 2)}
    expected |= {(p, "browse_abandonment", None) for p in _viewers(people)}
    triggers = _crash_and_restore(kafka, tmp_path, run_id, _history, len(expected))
    fired = {(t["person_id"], t["trigger_type"], t.get("reminder_index")) for t in triggers}
    assert fired == expected, f"missing: {sorted(expected - fired, key=str)}"
    assert len(triggers) == len(expected)
    first = next(t for t in triggers if t["person_id"] == "early-0" and t.get("reminder_index") == 1)
    assert first["fired_at_ms"] == BEGINNING + 5 * MINUTE + HOUR
    browse = next(t for t in triggers if t["person_id"] == "viewer-late-0")
    assert browse["fired_at_ms"] == BEGINNING + 4 * DAY + 2 * MINUTE + 30 * MINUTE  # the session's end
