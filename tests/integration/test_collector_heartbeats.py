"""Watermark heartbeats, read back from the real broker: a collector of the test's own on a 4-partition topic.

1. Live: no heartbeat before the first event; then every partition gets heartbeats stamped about now (the
   Kafka record timestamp equal to the JSON one), except a partition while its events keep coming.
2. Replay: after a batch stamped 30 days ago the heartbeats are stamped 30 days ago, not now, and a collector
   restarted on the same topic resumes that clock from Redis without any new event.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from sandbox.process import ManagedProcess, http_ok
from sandbox.settings import PROJECT_ROOT, SandboxSettings
from tests.support.collector import CollectorClient, free_port

pytestmark = pytest.mark.integration

INTERVAL_MS = 200
PARTITIONS = 4
DAY_MS = 86_400_000
MESSAGE_ID = re.compile(r"watermark:(?P<instance>[^:]+):(?P<partition>\d+):(?P<ms>\d+)")


@dataclass(frozen=True)
class KafkaRecord:
    partition: int
    offset: int
    timestamp_ms: int
    timestamp_type: int
    key: bytes | None
    value: dict[str, Any]

    @property
    def is_heartbeat(self) -> bool:
        return self.value.get("type") == "watermark"


StartCollector = Callable[[str], tuple[CollectorClient, ManagedProcess]]


@pytest.fixture
def topic(sandbox: SandboxSettings, redis_client, run_id: str) -> Iterator[str]:
    """A fresh 4-partition events topic stamped at create time (the sandbox's clickstream.events is so too)."""
    name = f"test.heartbeats.{run_id}"
    admin = KafkaAdminClient(bootstrap_servers=sandbox.kafka_bootstrap, client_id="tests-heartbeats")
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    yield name
    redis_client.delete(f"cartpulse:event-clock:{name}")
    admin.delete_topics([name])
    admin.close()


@pytest.fixture
def start_collector(sandbox: SandboxSettings, tmp_path: Path) -> Iterator[StartCollector]:
    started: list[tuple[CollectorClient, ManagedProcess]] = []

    def start(events_topic: str) -> tuple[CollectorClient, ManagedProcess]:
        port = free_port()
        url = f"http://{sandbox.host}:{port}"
        process = ManagedProcess(
            name=f"collector-heartbeats-{len(started)}",
            argv=[sys.executable, "-m", "collector"],
            run_dir=tmp_path / "run",
            logs_dir=tmp_path / "logs",
            host=sandbox.host,
            port=port,
            ready=http_ok(f"{url}/health"),
            start_timeout_s=30.0,
            env={
                "KAFKA_BOOTSTRAP_SERVERS": sandbox.kafka_bootstrap,
                "REDIS_URL": sandbox.redis_url,
                "COLLECTOR_PORT": str(port),
                "COLLECTOR_EVENTS_TOPIC": events_topic,
                "COLLECTOR_HEARTBEAT_INTERVAL": f"{INTERVAL_MS}ms",
            },
            cwd=PROJECT_ROOT,
        )
        process.start()
        client = CollectorClient(url)
        started.append((client, process))
        return client, process

    yield start
    for client, process in started:
        client.close()
        process.stop()


def _read(bootstrap: str, topic: str) -> list[KafkaRecord]:
    """Every record of the topic, in partition and offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[KafkaRecord] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"reading {topic} did not reach its end offsets"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(
                    KafkaRecord(m.partition, m.offset, m.timestamp, m.timestamp_type, m.key, json.loads(m.value))
                    for m in batch
                )
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _event(run_id: str, n: int, person: str, when: datetime) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": person,
        "messageId": f"{run_id}-{n}",
        "timestamp": _iso(when),
        "properties": {"product_id": f"p{n}", "price": 10.0},
    }


def _assert_contract(beat: KafkaRecord) -> str:
    """The record the jobs read; returns the collector instance id it names."""
    assert set(beat.value) == {"type", "timestamp", "messageId", "source"}
    assert beat.value["source"] == "collector" and beat.key is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", beat.value["timestamp"])
    assert beat.timestamp_type == 0 and beat.timestamp_ms == _ms(beat.value["timestamp"])  # CreateTime, same ms
    match = MESSAGE_ID.fullmatch(beat.value["messageId"])
    assert match and int(match["partition"]) == beat.partition and int(match["ms"]) == beat.timestamp_ms
    return match["instance"]


def test_live_heartbeats_start_with_the_first_event_stamp_now_and_skip_a_busy_partition(
    sandbox, topic, start_collector, run_id
):
    client, _ = start_collector(topic)
    time.sleep(3 * INTERVAL_MS / 1000)
    assert _read(sandbox.kafka_bootstrap, topic) == []  # no clock yet: nothing stamped "now" on speculation

    started_ms = _now_ms()
    person = f"hb-{run_id}"
    for n in range(60):  # one person, so one partition, an event about every 30 ms for ~2 s
        assert client.post("track", _event(run_id, n, person, datetime.now(UTC))).status_code == 200
        time.sleep(0.02)
    time.sleep(5 * INTERVAL_MS / 1000)  # then that partition is idle too

    records = _read(sandbox.kafka_bootstrap, topic)
    read_ms = _now_ms()
    events = [r for r in records if not r.is_heartbeat]
    beats = [r for r in records if r.is_heartbeat]
    assert len(events) == 60 and len({e.partition for e in events}) == 1
    assert {b.partition for b in beats} == set(range(PARTITIONS))
    assert len({_assert_contract(b) for b in beats}) == 1
    for beat in beats:
        assert started_ms - 2_000 <= beat.timestamp_ms <= read_ms
    for partition in range(PARTITIONS):
        stamps = [b.timestamp_ms for b in beats if b.partition == partition]
        assert stamps == sorted(stamps)
    others = [b for b in beats if b.partition != events[0].partition]
    assert len(others) >= 3 * (2_000 // INTERVAL_MS) // 2  # the idle partitions got one about every interval

    # On the busy partition a heartbeat may only sit between two events received more than half an interval
    # apart (a hiccup of the test's own sending); with events closer than that none may come in between.
    received = [_ms(e.value["receivedAt"]) for e in events]
    gaps = [later - earlier for earlier, later in zip(received, received[1:], strict=False)]
    assert sorted(gaps)[len(gaps) // 2] < INTERVAL_MS / 2, "the test did not send fast enough to mean anything"
    for beat in (b for b in beats if b.partition == events[0].partition):
        if beat.offset < events[-1].offset:
            after = next(i for i, e in enumerate(events) if e.offset > beat.offset)
            assert gaps[after - 1] > INTERVAL_MS / 2, f"a heartbeat between events {gaps[after - 1]} ms apart"


def test_after_a_replay_of_old_events_heartbeats_are_stamped_in_the_replays_time_also_after_a_restart(
    sandbox, topic, start_collector, run_id
):
    client, first = start_collector(topic)
    time.sleep(3 * INTERVAL_MS / 1000)
    assert _read(sandbox.kafka_bootstrap, topic) == []

    month_ago = datetime.now(UTC) - timedelta(days=30)
    batch = [_event(run_id, n, f"hb-{run_id}-{n % 8}", month_ago + timedelta(seconds=n)) for n in range(40)]
    assert client.post("batch", {"batch": batch, "sentAt": _iso(datetime.now(UTC))}).status_code == 200
    time.sleep(5 * INTERVAL_MS / 1000)

    records = _read(sandbox.kafka_bootstrap, topic)
    events = [r for r in records if not r.is_heartbeat]
    newest = max(_ms(e.value["timestamp"]) for e in events)
    received_ms = _ms(events[0].value["receivedAt"])  # one request: all events share it
    beats = [r for r in records if r.is_heartbeat]
    assert {b.partition for b in beats} == set(range(PARTITIONS))
    for beat in beats:
        _assert_contract(beat)
        # from where the replay is, at wall speed: written at wall time w, stamped newest + (w - receivedAt)
        assert newest <= beat.timestamp_ms <= newest + (_now_ms() - received_ms)
        assert beat.timestamp_ms < _now_ms() - 29 * DAY_MS
    assert client.metric("cartpulse_collector_event_clock_offset_seconds") < -29 * 86_400
    assert client.metric("cartpulse_collector_heartbeats_total") >= PARTITIONS
    first_instance = _assert_contract(beats[0])

    first.stop()
    stopped_ms = _now_ms()
    start_collector(topic)
    time.sleep(5 * INTERVAL_MS / 1000)

    beats_now = [r for r in _read(sandbox.kafka_bootstrap, topic) if r.is_heartbeat]
    after_restart = [b for b in beats_now if _assert_contract(b) != first_instance]
    assert {b.partition for b in after_restart} == set(range(PARTITIONS))  # resumed, without any new event
    for beat in after_restart:
        assert newest + (stopped_ms - received_ms) <= beat.timestamp_ms <= newest + (_now_ms() - received_ms)
