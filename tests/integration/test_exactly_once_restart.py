"""A crash between checkpoints, then a restore from the last checkpoint: each trigger exactly once.

The job runs as its own process (as under ``make run``) so the test can kill it with SIGKILL: no
clean shutdown, open Kafka transactions left behind, exactly what a lost TaskManager looks like.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from kafka import KafkaProducer

from sandbox.settings import PROJECT_ROOT
from tests.support.events import BEGINNING, DAY, HOUR, MINUTE, as_json, page_viewed, product_added

pytestmark = pytest.mark.integration

PEOPLE_BEFORE = [f"early-{n}" for n in range(12)]
PEOPLE_AFTER = [f"late-{n}" for n in range(6)]


def _job_config(tmp_path: Path, run_id: str, topics: dict[str, str], recovery: str | None) -> Path:
    base = yaml.safe_load((PROJECT_ROOT / "flink-conf/jobs/cart_abandonment.yaml").read_text())
    base["job_name"] = f"restart-{run_id}"
    base["kafka"].update({"group_id": f"restart-{run_id}", "starting_offsets": "earliest", "bounded": False})
    base["topics"] = topics
    base["redis"]["key_prefix"] = f"restart-{run_id}:profile:"
    base["event_time"]["idleness"] = "2s"
    base["flink"].update(
        {
            "execution.checkpointing.interval": "2s",
            "execution.checkpointing.dir": (tmp_path / "checkpoints").as_uri(),
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "restart-strategy.type": "none",
        }
    )
    if recovery:
        base["flink"]["execution.state-recovery.path"] = recovery
    path = tmp_path / ("resume.yaml" if recovery else "first.yaml")
    path.write_text(yaml.safe_dump(base))
    return path


def _start_job(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, str(PROJECT_ROOT / "jobs/cart_abandonment.py"), "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            start_new_session=True,
            env={**os.environ, "FLINK_LOG_DIR": str(log.parent / "flink")},
        )


def _completed_checkpoints(root: Path) -> list[Path]:
    found = [p.parent for p in root.glob("*/chk-*/_metadata")]
    return sorted(found, key=_number)


def _number(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[1])


def _cart_events(people: list[str], t0: int) -> list[bytes]:
    events = []
    for n, person in enumerate(people):
        events.append(as_json(product_added(person, t0 + n * MINUTE, product_id=f"p{n}", price=10.0 + n)))
        events.append(as_json(product_added(person, t0 + n * MINUTE + 5 * MINUTE, product_id="extra", price=1.0)))
    return events


def _clock_tick(producer: KafkaProducer, topic: str, t_ms: int, partitions: int) -> None:
    """An event on every partition far in event time, so the watermark passes every pending timer."""
    for partition in range(partitions):
        producer.send(topic, value=as_json(page_viewed(f"clock-{partition}-{t_ms}", t_ms)), partition=partition)
    producer.flush()


def test_restore_after_sigkill_emits_every_trigger_exactly_once(kafka, redis_client, run_id, tmp_path):
    topics = {"events": f"rs-events-{run_id}", "dead_letter": f"rs-dlq-{run_id}", "triggers": f"rs-triggers-{run_id}"}
    kafka.create_topics(*topics.values(), partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for record in _cart_events(PEOPLE_BEFORE, BEGINNING):
        producer.send(topics["events"], value=record)
    _clock_tick(producer, topics["events"], BEGINNING + 3 * DAY, partitions=2)

    log = tmp_path / "job.log"
    checkpoints_dir = tmp_path / "checkpoints"

    def crash_ready() -> bool:
        checkpoints = _completed_checkpoints(checkpoints_dir)
        return len(kafka.read_json(topics["triggers"])) >= 4 and bool(checkpoints) and _number(checkpoints[-1]) >= 2

    job = _start_job(_job_config(tmp_path, run_id, topics, recovery=None), log)
    try:
        _wait_for(crash_ready, job, log, "triggers and two checkpoints")
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    before_crash = kafka.read_json(topics["triggers"])
    checkpoint = _completed_checkpoints(checkpoints_dir)[-1]

    # More traffic while the job is down; then resume from the last checkpoint.
    for record in _cart_events(PEOPLE_AFTER, BEGINNING + 4 * DAY):
        producer.send(topics["events"], value=record)
    _clock_tick(producer, topics["events"], BEGINNING + 7 * DAY, partitions=2)
    producer.close()
    expected = {(p, i) for p in PEOPLE_BEFORE + PEOPLE_AFTER for i in (1, 2)}

    def all_fired() -> bool:
        return len(kafka.read_json(topics["triggers"])) >= len(expected)

    resumed = _start_job(_job_config(tmp_path, run_id, topics, recovery=checkpoint.as_uri()), log)
    try:
        _wait_for(all_fired, resumed, log, f"{len(expected)} committed triggers")
        time.sleep(5)  # a few more checkpoints: anything emitted twice would be committed by now
    finally:
        os.killpg(resumed.pid, signal.SIGKILL)
        resumed.wait(timeout=30)

    triggers = kafka.read_json(topics["triggers"])
    counts = Counter(t["trigger_id"] for t in triggers)
    assert [tid for tid, n in counts.items() if n > 1] == [], "a trigger was emitted twice"
    fired = {(t["person_id"], t["reminder_index"]) for t in triggers}
    assert fired == expected, f"missing: {sorted(expected - fired)}"
    assert len(triggers) == len(expected)
    assert 4 <= len(before_crash) < len(expected)
    first = next(t for t in triggers if t["person_id"] == "early-0" and t["reminder_index"] == 1)
    assert first["fired_at_ms"] == BEGINNING + 5 * MINUTE + HOUR


def _wait_for(condition, job: subprocess.Popen[bytes], log: Path, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        assert job.poll() is None, f"the job exited (code {job.returncode}) while waiting for {what}; see {log}"
        time.sleep(1)
    pytest.fail(f"no {what} within {timeout_s:.0f} s; see {log}")
