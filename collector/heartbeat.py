"""Watermark heartbeats: event-time progress on every partition of the events topic, also in a silent shop.

Why: the jobs read the events topic on event time, and a keyed operator's watermark is the minimum over its
input partitions. Flink never advances an idle input by itself, so after one ``Product Added`` and silence
the reminder's timer would wait for other shoppers' clicks. The collector therefore writes a heartbeat to
each partition that had no event during the last interval; the jobs read it as event time and drop it.

The record (the contract the jobs read)::

    topic      the collector's events topic (COLLECTOR_EVENTS_TOPIC), one record per partition, produced with
               an explicit partition number and no key
    value      {"type":"watermark","timestamp":"2026-01-01T00:05:00.000Z",
                "messageId":"watermark:<instance id>:<partition>:<epoch ms>","source":"collector"}
               compact JSON; ``timestamp`` is ISO-8601 UTC with milliseconds, ending in Z
    Kafka      the record's timestamp is the same epoch ms
    timestamp

The time is the collector's event clock (:mod:`collector.event_clock`), not the wall clock, so that a replay
of old events through the collector is still judged in event time. No heartbeat is written until the clock
is known: after the first acknowledged event, or at once when an offset saved in Redis
(``cartpulse:event-clock:<topic>``, rewritten every interval) is younger than
``COLLECTOR_HEARTBEAT_RESUME_WITHIN``.

Every ``COLLECTOR_HEARTBEAT_INTERVAL`` (1 s; 0 turns this off) a background task ends the interval: it asks
the producer's metadata for the partitions (refreshed each minute, so added partitions get beats), writes
the beats, and saves the clock. Kafka or Redis down never stops the collector or holds up a request: that
interval's beat (or save) is skipped and counted in ``cartpulse_collector_heartbeat_failures_total{backend}``,
and logged once per outage. The task shares the producer with the requests but waits only on its own
deliveries; a beat still unacknowledged after the produce timeout is counted as failed, and the next
interval comes after it, so beats never pile up in the producer while the broker is away.

A heartbeat says "no event older than T is coming on this partition" as much as an event of another shopper
on that partition does; clients that send late (a browser's queue kept for hours) are the jobs' late data,
with or without heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from collector.clients.base import DeliveryListener, OutgoingRecord
from collector.config import CollectorSettings
from collector.errors import BackendUnavailable
from collector.event_clock import Beat, EventClock, SavedClock
from collector.metrics import CollectorMetrics
from collector.timestamps import format_ms
from udfs.events import HEARTBEAT_TYPE  # the jobs read the same type name

__all__ = [
    "HEARTBEAT_SOURCE",
    "ClockStore",
    "Heartbeat",
    "HeartbeatOptions",
    "HeartbeatProducer",
    "Heartbeats",
]

log = logging.getLogger(__name__)

HEARTBEAT_SOURCE = "collector"

WallClock = Callable[[], int]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One heartbeat record, as it goes on the wire."""

    instance_id: str
    partition: int
    timestamp_ms: int

    @property
    def message_id(self) -> str:
        return f"watermark:{self.instance_id}:{self.partition}:{self.timestamp_ms}"

    def value(self) -> bytes:
        doc = {
            "type": HEARTBEAT_TYPE,
            "timestamp": format_ms(self.timestamp_ms),
            "messageId": self.message_id,
            "source": HEARTBEAT_SOURCE,
        }
        return json.dumps(doc, separators=(",", ":")).encode("ascii")

    def record(self) -> OutgoingRecord:
        return OutgoingRecord(key=None, value=self.value(), partition=self.partition, timestamp_ms=self.timestamp_ms)


@runtime_checkable
class HeartbeatProducer(Protocol):
    """What heartbeats need of the producer (:class:`~collector.clients.kafka.KafkaEventProducer` has it)."""

    def on_delivered(self, listener: DeliveryListener) -> None: ...

    async def partitions(self, topic: str) -> set[int]: ...

    async def produce(self, topic: str, records: Sequence[OutgoingRecord]) -> list[asyncio.Future[None]]: ...


@runtime_checkable
class ClockStore(Protocol):
    """Where the event clock is kept across restarts (:class:`~collector.clients.redis.RedisStore`)."""

    async def load_event_clock(self, topic: str) -> SavedClock | None: ...

    async def save_event_clock(self, topic: str, saved: SavedClock, ttl_ms: int) -> None: ...


@dataclass(frozen=True, slots=True)
class HeartbeatOptions:
    """:param interval_ms: between beats (> 0). :param resume_within_ms: 0 neither saves nor resumes."""

    topic: str = "clickstream.events"
    interval_ms: int = 1_000
    resume_within_ms: int = 3_600_000
    produce_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, s: CollectorSettings) -> HeartbeatOptions:
        return cls(
            topic=s.events_topic,
            interval_ms=s.heartbeat_interval_ms,
            resume_within_ms=s.heartbeat_resume_within_ms,
            produce_timeout_s=s.produce_timeout_ms / 1000,
        )


class Heartbeats:
    """The background task; :meth:`delivered` is the producer's delivery listener, :meth:`beat` one interval.

    :param store: ``None`` keeps the clock in memory only.
    :param instance_id: in every ``messageId``; default a random 12-hex id per process.
    :param wall: the wall clock, epoch ms.
    """

    def __init__(
        self,
        options: HeartbeatOptions,
        producer: HeartbeatProducer,
        store: ClockStore | None,
        metrics: CollectorMetrics,
        *,
        instance_id: str | None = None,
        wall: WallClock = _now_ms,
    ) -> None:
        if options.interval_ms <= 0:
            raise ValueError("the heartbeat interval must be positive (0 means: build no Heartbeats)")
        self.options = options
        self.producer = producer
        self.store = store if options.resume_within_ms > 0 else None
        self.metrics = metrics
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.clock = EventClock(options.resume_within_ms)
        self._wall = wall
        self._down: set[str] = set()  # backends whose outage was logged
        self._failures: dict[str, str] = {}  # this interval's: backend -> why
        self._worked: set[str] = set()  # this interval's successes
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: CollectorSettings, producer: object, store: object, metrics: CollectorMetrics
    ) -> Heartbeats | None:
        """Heartbeats listening to ``producer``; ``None`` when turned off or the producer cannot place records."""
        if settings.heartbeat_interval_ms <= 0 or not isinstance(producer, HeartbeatProducer):
            return None
        heartbeats = cls(
            HeartbeatOptions.from_settings(settings),
            producer,
            store if isinstance(store, ClockStore) else None,
            metrics,
        )
        producer.on_delivered(heartbeats.delivered)
        return heartbeats

    def delivered(self, topic: str, partition: int, record: OutgoingRecord) -> None:
        """The broker acknowledged ``record``; events (keyed, on the events topic) feed the clock."""
        if topic != self.options.topic or record.event_time_ms is None:
            return
        self.clock.produced(partition, record.event_time_ms, record.received_at_ms)

    def start(self) -> None:
        log.info(
            "heartbeats every %d ms to every idle partition of %r (instance %s)",
            self.options.interval_ms,
            self.options.topic,
            self.instance_id,
        )
        self._task = asyncio.get_running_loop().create_task(self._run(), name="collector-heartbeats")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def beat(self) -> list[Beat]:
        """End one interval: resume the clock if still unknown, write the beats it asks for, save it."""
        now = self._wall()
        self._failures, self._worked = {}, set()
        await self._resume(now)
        partitions = await self._partitions()
        beats = self.clock.tick(now, partitions or ())
        if self.clock.offset_ms is not None:
            self.metrics.event_clock_offset.set(self.clock.offset_ms / 1000)
        await asyncio.gather(self._write(beats), self._save(now))
        self._settle()
        return beats

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval_s = self.options.interval_ms / 1000
        deadline = loop.time()
        while True:
            deadline += interval_s
            if deadline < loop.time():  # the last beat overran: skip the intervals it took
                deadline = loop.time() + interval_s
            await asyncio.sleep(deadline - loop.time())
            try:
                await self.beat()
            except Exception:
                log.exception("a heartbeat failed unexpectedly; the next interval tries again")

    async def _resume(self, now: int) -> None:
        if self.clock.known or self.store is None:
            return
        try:
            saved = await self.store.load_event_clock(self.options.topic)
        except BackendUnavailable as exc:
            self._failed("redis", exc.detail)
            return
        self._worked.add("redis")
        if self.clock.resume(saved, now) and saved is not None:
            log.info("resumed the event clock saved %d ms ago: offset %d ms", now - saved.saved_at_ms, saved.offset_ms)

    async def _partitions(self) -> set[int] | None:
        if not self.clock.due:  # nothing to write yet: leave connecting to the requests
            return None
        try:
            partitions = await self.producer.partitions(self.options.topic)
        except BackendUnavailable as exc:
            self._failed("kafka", exc.detail)
            return None
        self._worked.add("kafka")
        return partitions

    async def _write(self, beats: Sequence[Beat]) -> None:
        if not beats:
            return
        records = [Heartbeat(self.instance_id, b.partition, b.timestamp_ms).record() for b in beats]
        try:
            deliveries = await self.producer.produce(self.options.topic, records)
        except BackendUnavailable as exc:
            self._failed("kafka", exc.detail)
            return
        done, _ = await asyncio.wait(deliveries, timeout=self.options.produce_timeout_s)
        errors = [error for d in done if (error := d.exception()) is not None]
        acked = len(done) - len(errors)
        self.metrics.heartbeats.inc(acked)
        if acked < len(records):
            self._failed("kafka", str(errors[0]) if errors else "no acknowledgement within the produce timeout")
        else:
            self._worked.add("kafka")

    async def _save(self, now: int) -> None:
        saved = self.clock.saved(now)
        if self.store is None or saved is None:
            return
        try:
            await self.store.save_event_clock(self.options.topic, saved, self.options.resume_within_ms)
        except BackendUnavailable as exc:
            self._failed("redis", exc.detail)
        else:
            self._worked.add("redis")

    def _failed(self, backend: str, detail: str) -> None:
        self._failures.setdefault(backend, detail)

    def _settle(self) -> None:
        """Count each backend that failed this interval once; log an outage when it starts and when it ends."""
        for backend, detail in self._failures.items():
            self.metrics.heartbeat_failures.labels(backend).inc()
            if backend not in self._down:
                self._down.add(backend)
                log.warning(
                    "heartbeats: %s unavailable (%s); skipping beats until it is back (counted in the failures metric)",
                    backend,
                    detail,
                )
        for backend in (self._worked - self._failures.keys()) & self._down:
            self._down.discard(backend)
            log.info("heartbeats: %s is back", backend)
