"""One worker process: a kafka-python consumer on one partition, read from the beginning to the end it had at start.

The process does everything for its partition (parse, steps, Redis, Kafka) on one thread, as a plain consumer
would; kafka-python's producer adds its sender thread. CPU time and peak RSS are read from the process itself
at the end, so they include its start-up, its imports and that thread.
"""

from __future__ import annotations

import resource
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from .logic import Logic
from .profiles import PipelinedProfiles
from .steps import PartitionSteps

__all__ = ["Settings", "WorkerFailure", "WorkerResult", "WorkerTask", "run_partition", "worker_main"]

POLL_TIMEOUT_MS = 1_000
STALL_TIMEOUT_S = 60.0  # no record for this long before the end offset: the broker is gone, fail the run
PROGRESS_EVERY = 25_000
SEND_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Settings:
    """Where a run reads and writes, and how it batches; the same for every worker."""

    bootstrap: str
    topic: str
    redis_url: str
    key_prefix: str
    triggers_topic: str
    dead_letter_topic: str
    max_records: int | None = None  # per partition; None: up to the end offset at start
    redis_batch: int = 1_000  # commands per pipeline
    redis_flush_ms: float = 50.0  # at most this long between a write and its pipeline being sent
    stage: str = "baseline"
    streaming: bool = True  # watermarks as records arrive; False: none until the end (PartitionSteps)
    progress: bool = True


@dataclass(frozen=True)
class WorkerTask:
    partition: int
    settings: Settings
    logic: Logic
    launched_at: float  # the parent's time.monotonic() at launch (system-wide on Linux), for the start-up cost


@dataclass(frozen=True)
class WorkerResult:
    """What one worker read, wrote and cost.

    :param seconds: from its first poll to the end, outputs acknowledged (the processing alone).
    :param setup_seconds: from the parent's launch to the first poll (process start, imports, connections).
    :param cpu_seconds: user + system time of the whole process; ``setup_cpu_seconds`` of it before the first poll.
    """

    partition: int
    records: int
    triggers: int
    dead_letters: int
    late: int
    heartbeats: int
    profiles: int
    profile_writes: int
    redis_commands: int
    redis_flushes: int
    seconds: float
    setup_seconds: float
    cpu_seconds: float
    setup_cpu_seconds: float
    peak_rss_mb: float


@dataclass(frozen=True)
class WorkerFailure:
    partition: int
    error: str


class _KafkaOutputs:
    """Triggers and dead letters to their topics, unkeyed and lz4-compressed as the jobs' sinks write them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap,
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
            compression_type="lz4",
        )
        self.failures: list[BaseException] = []

    def trigger(self, value: bytes) -> None:
        self.producer.send(self.settings.triggers_topic, value=value).add_errback(self.failures.append)

    def dead_letter(self, value: bytes) -> None:
        self.producer.send(self.settings.dead_letter_topic, value=value).add_errback(self.failures.append)

    def flush(self) -> None:
        self.producer.flush(timeout=SEND_TIMEOUT_S)
        if self.failures:
            raise RuntimeError(f"{len(self.failures)} records not acknowledged; first: {self.failures[0]!r}")

    def close(self) -> None:
        self.producer.close(timeout=SEND_TIMEOUT_S)


def run_partition(task: WorkerTask) -> WorkerResult:
    """Read the task's partition to its end offset at start, apply the steps, fire what is left, flush."""
    s, partition = task.settings, task.partition
    profiles = PipelinedProfiles(s.redis_url, s.key_prefix, task.logic.profile_ttl_ms, s.redis_batch, s.redis_flush_ms)
    profiles.setup()
    outputs = _KafkaOutputs(s)
    consumer = KafkaConsumer(
        bootstrap_servers=s.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=2_000,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        tp = TopicPartition(s.topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        first = consumer.position(tp)
        end = consumer.end_offsets([tp])[tp]
        if s.max_records is not None:
            end = min(end, first + s.max_records)
        steps = PartitionSteps(task.logic, profiles, outputs, s.stage, s.streaming)
        setup_cpu = _cpu_seconds()
        started = time.monotonic()
        _consume(consumer, tp, end, steps, profiles, s.progress)
        steps.finish()
        profiles.flush()
        outputs.flush()
        seconds = time.monotonic() - started
    finally:
        consumer.close()
        outputs.close()
        profiles.close()
    c = steps.counts
    return WorkerResult(
        partition=partition,
        records=c.records,
        triggers=c.triggers,
        dead_letters=c.dead_letters,
        late=c.late,
        heartbeats=c.heartbeats,
        profiles=len(steps.profiled),
        profile_writes=c.profile_writes,
        redis_commands=profiles.commands_sent,
        redis_flushes=profiles.flushes,
        seconds=seconds,
        setup_seconds=started - task.launched_at,
        cpu_seconds=_cpu_seconds(),
        setup_cpu_seconds=setup_cpu,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
    )


def _consume(
    consumer: Any, tp: TopicPartition, end: int, steps: PartitionSteps, profiles: PipelinedProfiles, progress: bool
) -> None:
    """Records up to offset ``end`` (exclusive), each through the steps, the Redis pipeline flushed as it fills."""
    monotonic, on_record, maybe_flush = time.monotonic, steps.on_record, profiles.maybe_flush
    last_record = monotonic()
    next_report = PROGRESS_EVERY
    while consumer.position(tp) < end:
        batches = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
        now = monotonic()
        if not batches:
            if now - last_record > STALL_TIMEOUT_S:
                raise TimeoutError(f"{tp}: no record for {STALL_TIMEOUT_S:.0f} s at {consumer.position(tp)}/{end}")
            maybe_flush(now)
            continue
        last_record = now
        for records in batches.values():
            for record in records:
                if record.offset >= end:
                    break
                on_record((record.value or b"").decode("utf-8", "replace"))
                maybe_flush(monotonic())
        if progress and steps.counts.records >= next_report:
            next_report += PROGRESS_EVERY
            print(f"baseline: partition {tp.partition}: {steps.counts.records} records", file=sys.stderr, flush=True)


def worker_main(task: WorkerTask, results: Queue[WorkerResult | WorkerFailure]) -> None:
    """A spawned worker's entry: its result, or its traceback, goes back to the parent."""
    try:
        results.put(run_partition(task))
    except BaseException:
        results.put(WorkerFailure(task.partition, traceback.format_exc()))
        raise


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
