"""The heartbeat task against twins: the record it writes, what feeds its clock, and Kafka or Redis down."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from pydantic import ValidationError

from collector.clients.base import DeliveryListener, OutgoingRecord
from collector.clients.kafka import KafkaEventProducer
from collector.clients.memory import MemoryProducer, MemoryStore
from collector.config import load_settings
from collector.errors import BackendUnavailable
from collector.event_clock import SavedClock
from collector.heartbeat import ClockStore, Heartbeat, HeartbeatOptions, HeartbeatProducer, Heartbeats
from collector.metrics import CollectorMetrics
from collector.timestamps import format_ms

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000
TOPIC = "clickstream.events"
OPTIONS = HeartbeatOptions(topic=TOPIC, interval_ms=1_000, resume_within_ms=3_600_000, produce_timeout_s=1.0)


@dataclass
class PlacingProducer:
    """A producer twin that knows partitions and tells its listeners of deliveries, as the Kafka one does."""

    partition_ids: set[int] = field(default_factory=lambda: {0, 1, 2, 3})
    down: bool = False
    records: list[tuple[str, OutgoingRecord]] = field(default_factory=list)
    listeners: list[DeliveryListener] = field(default_factory=list)

    def on_delivered(self, listener: DeliveryListener) -> None:
        self.listeners.append(listener)

    async def partitions(self, topic: str) -> set[int]:
        if self.down:
            raise BackendUnavailable("kafka", "the twin is down")
        return set(self.partition_ids)

    async def produce(self, topic: str, records: Sequence[OutgoingRecord]) -> list[asyncio.Future[None]]:
        if self.down:
            raise BackendUnavailable("kafka", "the twin is down")
        futures = []
        for record in records:
            self.records.append((topic, record))
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.set_result(None)
            futures.append(future)
        return futures

    def event_landed(self, partition: int, event_ms: int, received_ms: int, topic: str = TOPIC) -> None:
        value = {"type": "track", "timestamp": format_ms(event_ms), "receivedAt": format_ms(received_ms)}
        record = OutgoingRecord(b"ann", json.dumps(value).encode(), event_time_ms=event_ms, received_at_ms=received_ms)
        for listener in self.listeners:
            listener(topic, partition, record)

    def beats(self) -> list[dict]:
        return [json.loads(record.value) for _, record in self.records]


@dataclass
class ClockDict:
    down: bool = False
    saved: dict[str, tuple[SavedClock, int]] = field(default_factory=dict)

    async def load_event_clock(self, topic: str) -> SavedClock | None:
        if self.down:
            raise BackendUnavailable("redis", "the twin is down")
        entry = self.saved.get(topic)
        return entry[0] if entry else None

    async def save_event_clock(self, topic: str, saved: SavedClock, ttl_ms: int) -> None:
        if self.down:
            raise BackendUnavailable("redis", "the twin is down")
        self.saved[topic] = (saved, ttl_ms)


class Rig:
    def __init__(self, store: ClockDict | None = None) -> None:
        self.now = NOW
        self.producer = PlacingProducer()
        self.store = store or ClockDict()
        self.metrics = CollectorMetrics()
        self.heartbeats = Heartbeats(
            OPTIONS, self.producer, self.store, self.metrics, instance_id="c1", wall=lambda: self.now
        )
        self.producer.on_delivered(self.heartbeats.delivered)

    def beat(self, after_ms: int = 1_000) -> None:
        self.now += after_ms
        asyncio.run(self.heartbeats.beat())

    def failures(self, backend: str) -> float:
        return self.metrics.value("cartpulse_collector_heartbeat_failures_total", backend=backend)


def test_the_record_is_the_contract_compact_json_no_key_its_partition_and_kafka_timestamp():
    beat = Heartbeat("c1", 3, NOW + 5)

    record = beat.record()

    assert record.value == (
        b'{"type":"watermark","timestamp":"2026-01-01T00:00:00.005Z",'
        b'"messageId":"watermark:c1:3:1767225600005","source":"collector"}'
    )
    assert (record.key, record.partition, record.timestamp_ms) == (None, 3, NOW + 5)


def test_an_acknowledged_event_starts_beats_on_the_other_partitions_and_they_are_counted():
    rig = Rig()
    rig.beat()
    assert rig.producer.records == []

    rig.producer.event_landed(1, event_ms=rig.now - 30, received_ms=rig.now)
    rig.beat()

    stamp = format_ms(rig.now - 30)
    assert [(r.partition, r.key) for _, r in rig.producer.records] == [(0, None), (2, None), (3, None)]
    assert {b["timestamp"] for b in rig.producer.beats()} == {stamp}
    assert rig.metrics.value("cartpulse_collector_heartbeats_total") == 3
    assert rig.metrics.value("cartpulse_collector_event_clock_offset_seconds") == -0.03
    assert rig.store.saved[TOPIC] == (SavedClock(-30, rig.now), OPTIONS.resume_within_ms)


def test_dead_letters_and_keyless_records_do_not_feed_the_clock():
    rig = Rig()
    rig.producer.event_landed(0, event_ms=NOW, received_ms=NOW, topic="clickstream.dlq")
    for listener in rig.producer.listeners:
        listener(TOPIC, 1, OutgoingRecord(key=None, value=Heartbeat("other", 1, NOW).value()))

    rig.beat()

    assert rig.producer.records == [] and not rig.heartbeats.clock.known


def test_a_restarted_collector_resumes_the_saved_clock_and_beats_without_any_event():
    store = ClockDict(saved={TOPIC: (SavedClock(-DAY, NOW - 60_000), 3_600_000)})
    rig = Rig(store)

    rig.beat()

    assert [b["timestamp"] for b in rig.producer.beats()] == [format_ms(rig.now - DAY)] * 4


def test_kafka_down_skips_the_beats_counts_each_one_and_logs_once_per_outage(caplog):
    rig = Rig()
    rig.producer.event_landed(0, event_ms=NOW, received_ms=NOW)
    rig.beat()
    rig.producer.down = True

    with caplog.at_level(logging.INFO, logger="collector.heartbeat"):
        for _ in range(5):
            rig.beat()
        rig.producer.down = False
        rig.beat()

    assert rig.failures("kafka") == 5
    messages = [r.getMessage() for r in caplog.records]
    assert sum("kafka unavailable" in m for m in messages) == 1
    assert sum("kafka is back" in m for m in messages) == 1
    assert rig.metrics.value("cartpulse_collector_heartbeats_total") == 3 + 4


def test_redis_down_still_beats_and_counts_the_lost_saves():
    rig = Rig(ClockDict(down=True))

    rig.beat()  # cannot read a saved clock: counted, no beat (the clock is unknown)
    rig.producer.event_landed(2, event_ms=NOW, received_ms=NOW)
    rig.beat()

    assert len(rig.producer.records) == 3
    assert rig.failures("redis") == 2 and rig.failures("kafka") == 0


def test_the_task_beats_every_interval_and_stops_cleanly():
    async def scenario() -> PlacingProducer:
        producer = PlacingProducer()
        options = HeartbeatOptions(topic=TOPIC, interval_ms=20, resume_within_ms=0)
        heartbeats = Heartbeats(options, producer, None, CollectorMetrics(), instance_id="c1")
        producer.on_delivered(heartbeats.delivered)
        producer.event_landed(0, event_ms=NOW, received_ms=NOW)
        heartbeats.start()
        await asyncio.sleep(0.2)
        await heartbeats.stop()
        return producer

    producer = asyncio.run(scenario())

    beats_on_1 = [r for _, r in producer.records if r.partition == 1]
    assert 3 <= len(beats_on_1) <= 11


def test_heartbeats_are_built_for_the_kafka_producer_only_and_not_when_turned_off():
    settings = load_settings(heartbeat_interval_ms=200)
    kafka = KafkaEventProducer("127.0.0.1:1")

    built = Heartbeats.from_settings(settings, kafka, MemoryStore(clock=lambda: NOW), CollectorMetrics())

    assert built is not None and built.options.interval_ms == 200 and built.store is None  # the twin has no clock
    assert isinstance(kafka, HeartbeatProducer) and not isinstance(MemoryStore(clock=lambda: NOW), ClockStore)
    assert Heartbeats.from_settings(settings, MemoryProducer(), None, CollectorMetrics()) is None
    off = load_settings(heartbeat_interval_ms="0")
    assert Heartbeats.from_settings(off, kafka, None, CollectorMetrics()) is None


def test_settings_read_durations_zero_for_off_and_refuse_a_resume_window_shorter_than_an_interval(monkeypatch):
    monkeypatch.setenv("COLLECTOR_HEARTBEAT_INTERVAL", "0")
    assert load_settings().heartbeat_interval_ms == 0
    monkeypatch.setenv("COLLECTOR_HEARTBEAT_INTERVAL", "250ms")
    assert load_settings().heartbeat_interval_ms == 250
    for interval, resume in [("2m", "1h"), ("1 second", "1h"), ("10s", "5s")]:
        monkeypatch.setenv("COLLECTOR_HEARTBEAT_INTERVAL", interval)
        monkeypatch.setenv("COLLECTOR_HEARTBEAT_RESUME_WITHIN", resume)
        with pytest.raises(ValidationError):
            load_settings()
