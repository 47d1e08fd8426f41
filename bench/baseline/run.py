"""Run the baseline: one spawned worker process per partition, then one JSON line with what it did and cost.

    .venv/bin/python -m bench.baseline --topic bench-events-x --triggers-topic bench-triggers-x \\
        --dead-letter-topic bench-dlq-x --key-prefix bench-x:profile:

Workers are spawned, not forked, so each starts clean: its RSS and CPU time are its own, not partly the
parent's. ``seconds`` is wall time from launching the workers until the last has exited; ``setup_seconds`` (the
slowest worker's launch to its first poll) is the fixed part, for a harness that wants the marginal rate.
Progress goes to stderr, the result to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import queue
import resource
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path

from kafka import KafkaConsumer

from .logic import CLICKSTREAM_CONFIG, Logic, load_logic
from .worker import Settings, WorkerFailure, WorkerResult, WorkerTask, worker_main

__all__ = ["Report", "main", "run"]

RESULT_TIMEOUT_S = 3_600.0


@dataclass(frozen=True)
class Report:
    """The run as a harness reads it (one JSON line).

    :param events: records read, all partitions (events, and any heartbeats or bad records among them).
    :param cpu_seconds: user + system time of all workers (``RUSAGE_CHILDREN``), start-up included.
    :param peak_rss_mb: the workers' peaks added up (they run side by side: the memory the run needs);
        ``max_worker_rss_mb`` is the largest one.
    :param profiles_written: distinct profile hashes written; ``profile_writes`` counts the guarded writes.
    """

    events: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    triggers: int
    dead_letters: int
    profiles_written: int
    profile_writes: int
    late: int
    events_per_s: float
    cpu_s_per_1000_events: float
    max_worker_rss_mb: float
    setup_seconds: float
    setup_cpu_seconds: float
    partitions: list[int]
    workers: list[WorkerResult]


class BaselineFailed(RuntimeError):
    pass


def run(settings: Settings, logic: Logic, partitions: list[int]) -> Report:
    """Spawn a worker per partition, wait for all, and sum up; raises if any worker failed."""
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[WorkerResult | WorkerFailure] = ctx.Queue()
    cpu_before = _children_cpu()
    launched = time.monotonic()
    workers = {
        p: ctx.Process(
            target=worker_main,
            args=(WorkerTask(p, settings, logic, launched), results),
            name=f"baseline-partition-{p}",
        )
        for p in partitions
    }
    for w in workers.values():
        w.start()
    try:
        done = _collect(workers, results)
    finally:
        for w in workers.values():  # only ours, by their handles: a failed run must not leave readers behind
            if w.is_alive():
                w.terminate()
            w.join()
    seconds = time.monotonic() - launched
    failures = [d for d in done if isinstance(d, WorkerFailure)]
    if failures:
        raise BaselineFailed("\n".join(f"partition {f.partition}:\n{f.error}" for f in failures))
    finished = sorted((d for d in done if isinstance(d, WorkerResult)), key=lambda r: r.partition)
    cpu = _children_cpu() - cpu_before
    events = sum(r.records for r in finished)
    return Report(
        events=events,
        seconds=round(seconds, 3),
        cpu_seconds=round(cpu, 3),
        peak_rss_mb=round(sum(r.peak_rss_mb for r in finished), 1),
        triggers=sum(r.triggers for r in finished),
        dead_letters=sum(r.dead_letters for r in finished),
        profiles_written=sum(r.profiles for r in finished),
        profile_writes=sum(r.profile_writes for r in finished),
        late=sum(r.late for r in finished),
        events_per_s=round(events / seconds, 1),
        cpu_s_per_1000_events=round(1000 * cpu / events, 4) if events else 0.0,
        max_worker_rss_mb=round(max(r.peak_rss_mb for r in finished), 1),
        setup_seconds=round(max(r.setup_seconds for r in finished), 3),
        setup_cpu_seconds=round(sum(r.setup_cpu_seconds for r in finished), 3),
        partitions=partitions,
        workers=finished,
    )


def _collect(
    workers: Mapping[int, BaseProcess], results: multiprocessing.Queue[WorkerResult | WorkerFailure]
) -> list[WorkerResult | WorkerFailure]:
    """One result per worker; a worker that died without sending one (killed, out of memory) fails the run."""
    done: list[WorkerResult | WorkerFailure] = []
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while len(done) < len(workers):
        try:
            done.append(results.get(timeout=1.0))
            continue
        except queue.Empty:
            pass
        reported = {d.partition for d in done}
        for partition, w in workers.items():
            if w.exitcode is not None and partition not in reported:
                try:  # its result may have arrived since the timeout
                    done.append(results.get(timeout=5.0))
                except queue.Empty:
                    raise BaselineFailed(f"{w.name} exited with {w.exitcode} and no result") from None
                break
        if time.monotonic() > deadline:
            raise BaselineFailed(f"no result from every worker within {RESULT_TIMEOUT_S:.0f} s")
    return done


def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        found = consumer.partitions_for_topic(topic)
    finally:
        consumer.close()
    if not found:
        raise BaselineFailed(f"topic {topic!r} does not exist on {bootstrap}")
    return sorted(found)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.baseline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--topic", required=True, help="the events topic; read from the beginning")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--key-prefix", required=True, help="profile keys: <prefix><person> (redis.key_prefix)")
    p.add_argument("--triggers-topic", required=True)
    p.add_argument("--dead-letter-topic", required=True)
    p.add_argument(
        "--partitions", type=int, help="read partitions 0..N-1, one worker each (default: every partition of --topic)"
    )
    p.add_argument("--out-of-orderness-ms", type=int, help="default: the config's event_time.max_out_of_orderness")
    p.add_argument(
        "--no-watermarks",
        action="store_true",
        help="decide everything at the end of the input, as the job's bounded run does (default: watermarks as "
        "records arrive, timers firing as they pass, as a live consumer must)",
    )
    p.add_argument("--max-events", type=int, help="read at most this many records in all, split evenly over partitions")
    p.add_argument("--redis-batch", type=int, default=1_000, help="commands per Redis pipeline (default 1000)")
    p.add_argument("--redis-flush-ms", type=float, default=50.0, help="longest a write waits for its pipeline")
    p.add_argument("--config", type=Path, default=CLICKSTREAM_CONFIG, help="the clickstream job's YAML (its rules)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    available = topic_partitions(args.bootstrap, args.topic)
    count = len(available) if args.partitions is None else args.partitions
    if not 1 <= count <= len(available):
        sys.exit(f"--partitions {count}: {args.topic} has {len(available)} partitions")
    partitions = available[:count]
    logic = load_logic(args.config)
    if args.out_of_orderness_ms is not None:
        logic = replace(logic, out_of_orderness_ms=args.out_of_orderness_ms)
    settings = Settings(
        bootstrap=args.bootstrap,
        topic=args.topic,
        redis_url=args.redis_url,
        key_prefix=args.key_prefix,
        triggers_topic=args.triggers_topic,
        dead_letter_topic=args.dead_letter_topic,
        max_records=None if args.max_events is None else math.ceil(args.max_events / count),
        redis_batch=args.redis_batch,
        redis_flush_ms=args.redis_flush_ms,
        streaming=not args.no_watermarks,
        progress=not args.quiet,
    )
    try:
        report = run(settings, logic, partitions)
    except BaselineFailed as exc:
        sys.exit(f"baseline failed: {exc}")
    print(json.dumps(asdict(report)), flush=True)
