"""Run one job script as a subprocess with a temporary config, time it, and collect what it wrote.

The job runs exactly as ``make run`` or ``make demo`` runs it (``python jobs/<job>.py --config ...``), on
its own embedded MiniCluster, so the numbers include the real Kafka source and sinks, the Python workers
and the Redis writes. Only the config differs from the shipped one: fresh topics, consumer group and Redis
key prefix (so runs never see each other's data), and the Flink options under test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis
import yaml
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from sandbox.settings import PROJECT_ROOT, SandboxSettings

__all__ = [
    "JOBS",
    "Finished",
    "JobOutputs",
    "JobRun",
    "collect_outputs",
    "delete_keys",
    "delete_topics",
    "discard_files",
    "job_config",
    "restart_cause",
    "shipped_flink_options",
    "start_job",
    "stop_job",
    "wait_job",
]

# The clickstream jobs this benchmark can feed and check: job → (entry script, shipped config), as in
# sandbox/jobs.py (``make run``).
JOBS: dict[str, tuple[str, str]] = {
    "clickstream": ("jobs/clickstream.py", "flink-conf/jobs/clickstream.yaml"),
    # The engine floor (bench/floor_job.py) runs on the product's config: the same Flink options and parallelism.
    "floor": ("bench/floor_job.py", "flink-conf/jobs/clickstream.yaml"),
}
READ_TIMEOUT_S = 60.0
LOG_CHECK_INTERVAL_S = 5.0
TICK_INTERVAL_S = 20.0
_RESTARTING = "switched from state RUNNING to RESTARTING"
_CAUSE = "Caused by:"
SCAN_BATCH = 2_000
ADMIN_TIMEOUT_MS = 30_000
Tick = Callable[[float], None]


@dataclass(frozen=True)
class JobRun:
    """Where one run reads and writes; every name carries the run's tag."""

    job: str
    tag: str
    events_topic: str
    triggers_topic: str
    dead_letter_topic: str
    key_prefix: str
    config_path: Path
    log_path: Path
    root: Path = PROJECT_ROOT  # the tree whose job script and shipped config run (a variant's copy, or ours)

    @property
    def flink_log_dir(self) -> Path:
        return self.log_path.parent / "flink" / self.tag


@dataclass
class JobOutputs:
    """What a finished run left behind: committed triggers by type (cart ones by reminder: ``cart_abandonment#1``),
    dead letters (with their most common reasons), and profile hashes."""

    triggers: dict[str, int] = field(default_factory=dict)
    distinct_trigger_ids: int = 0
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    profiles: int = 0


def shipped_flink_options(job: str) -> dict[str, Any]:
    """The ``flink:`` section a job ships with (the baseline every named option set is layered on)."""
    cfg: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / JOBS[job][1]).read_text())
    return dict(cfg.get("flink") or {})


def job_config(
    job: str,
    tag: str,
    events_topic: str,
    workdir: Path,
    flink_options: Mapping[str, object],
    bounded: bool,
    root: Path = PROJECT_ROOT,
    parallelism: int = 0,
) -> JobRun:
    """Write the shipped config of ``job`` (as ``root`` ships it) with fresh names and ``flink_options`` on top;
    ``parallelism`` > 0 runs every operator with that many subtasks, whatever the topic's partitions."""
    _, shipped = JOBS[job]
    cfg: dict[str, Any] = yaml.safe_load((root / shipped).read_text())
    run = JobRun(
        job=job,
        tag=tag,
        events_topic=events_topic,
        triggers_topic=f"bench-triggers-{tag}",
        dead_letter_topic=f"bench-dlq-{tag}",
        key_prefix=f"bench-{tag}:profile:",
        config_path=workdir / f"{tag}.yaml",
        log_path=workdir / f"{tag}.log",
        root=root,
    )
    cfg["job_name"] = f"bench-{tag}"
    cfg["kafka"].update({"group_id": f"bench-{tag}", "starting_offsets": "earliest", "bounded": bounded})
    if parallelism > 0:
        cfg["kafka"]["parallelism_from_partitions"] = False
    cfg["topics"] = {"events": events_topic, "dead_letter": run.dead_letter_topic, "triggers": run.triggers_topic}
    cfg["redis"]["key_prefix"] = run.key_prefix
    cfg["flink"] = {
        **cfg["flink"],
        "execution.checkpointing.dir": (workdir / "checkpoints" / tag).as_uri(),
        **flink_options,
        **({"parallelism.default": parallelism} if parallelism > 0 else {}),
    }
    run.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return run


def start_job(
    run: JobRun, settings: SandboxSettings, extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start the job in its own session (so it and its JVM and Python workers can be stopped together)."""
    script, _ = JOBS[run.job]
    env = {**os.environ, **settings.env(), "FLINK_LOG_DIR": str(run.flink_log_dir), **(extra_env or {})}
    with open(run.log_path, "wb") as log:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and job script
            [sys.executable, str(run.root / script), "--config", str(run.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=run.root,
            env=env,
            start_new_session=True,
        )


@dataclass(frozen=True)
class Finished:
    """How a bounded run ended: exit code (None: we stopped it), seconds from start to exit, and why if failed."""

    exit_code: int | None
    seconds: float
    error: str | None = None


def wait_job(
    process: subprocess.Popen[bytes], run: JobRun, started: float, timeout_s: float, tick: Tick | None = None
) -> Finished:
    """Wait for a bounded run to end (``started``: ``time.monotonic()`` just before it was started).

    A job that Flink restarts never ends on its own (the restart strategy retries for ever), so the first
    restart in its log stops it and fails the run with the exception that caused it; so does the timeout.
    """
    next_check, next_tick = started + LOG_CHECK_INTERVAL_S, started + TICK_INTERVAL_S
    while True:
        try:
            code = process.wait(timeout=0.02)
            seconds = time.monotonic() - started
            return Finished(code, seconds, None if code == 0 else f"exit {code}; see {run.log_path}")
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            if now - started > timeout_s:
                stop_job(process)
                return Finished(None, now - started, f"no end within {timeout_s:.0f} s; see {run.log_path}")
            if now >= next_check:
                next_check += LOG_CHECK_INTERVAL_S
                cause = restart_cause(run)
                if cause is not None:
                    stop_job(process)
                    return Finished(None, now - started, f"Flink restarted the job: {cause}")
                if tick is not None and now >= next_tick:
                    next_tick += TICK_INTERVAL_S
                    tick(now - started)


def restart_cause(run: JobRun) -> str | None:
    """The root cause of the first restart in the run's Flink log, or None when it has not restarted."""
    for path in sorted(run.flink_log_dir.glob("*.log")):
        text = path.read_text(errors="replace")
        if _RESTARTING not in text:
            continue
        causes = [line.strip() for line in text[: text.index(_RESTARTING)].splitlines() if line.startswith(_CAUSE)]
        return (causes[-1] if causes else "see " + str(path))[:400]
    return None


def stop_job(process: subprocess.Popen[bytes]) -> None:
    """Stop a job this benchmark started: its whole session (the JVM and the Python workers), by its pid."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass


def discard_files(run: JobRun) -> None:
    """Remove a run's config, logs and checkpoints (kept only when the run failed, for its logs)."""
    run.config_path.unlink(missing_ok=True)
    run.log_path.unlink(missing_ok=True)
    shutil.rmtree(run.flink_log_dir, ignore_errors=True)
    shutil.rmtree(run.config_path.parent / "checkpoints" / run.tag, ignore_errors=True)


def collect_outputs(run: JobRun, settings: SandboxSettings) -> JobOutputs:
    """Read the run's committed triggers and dead letters, and count its profile hashes."""
    out = JobOutputs()
    trigger_types: Counter[str] = Counter()
    ids: set[str] = set()
    for record in _read_all(settings.kafka_bootstrap, run.triggers_topic):
        trigger = json.loads(record)
        reminder = trigger.get("reminder_index")
        trigger_types[trigger["trigger_type"] + (f"#{reminder}" if reminder is not None else "")] += 1
        ids.add(trigger["trigger_id"])
    out.triggers, out.distinct_trigger_ids = dict(trigger_types), len(ids)
    reasons: Counter[str] = Counter()
    for record in _read_all(settings.kafka_bootstrap, run.dead_letter_topic):
        dead = json.loads(record)
        reasons[str(dead.get("error", "?"))[:60]] += 1
    out.dead_letters, out.dead_letter_reasons = sum(reasons.values()), dict(reasons.most_common(5))
    client = redis.Redis.from_url(settings.redis_url)
    try:
        out.profiles = sum(1 for key in client.scan_iter(f"{run.key_prefix}*", SCAN_BATCH) if b":triggers" not in key)
    finally:
        client.close()
    return out


def delete_keys(settings: SandboxSettings, prefix: str) -> int:
    """Remove a run's Redis keys, so the benchmark leaves the database as it found it."""
    client = redis.Redis.from_url(settings.redis_url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(f"{prefix}*", SCAN_BATCH):
            batch.append(key)
            if len(batch) >= SCAN_BATCH:
                deleted += cast(int, client.unlink(*batch))  # redis-py types sync replies as Awaitable | Any
                batch.clear()
        if batch:
            deleted += cast(int, client.unlink(*batch))  # redis-py types sync replies as Awaitable | Any
    finally:
        client.close()
    return deleted


def delete_topics(settings: SandboxSettings, topics: list[str]) -> None:
    """Remove the run's topics (they were created for it alone)."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id="cartpulse-bench", request_timeout_ms=ADMIN_TIMEOUT_MS
    )
    try:
        existing = set(admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    """Every committed record of ``topic`` up to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[bytes] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(consumer.position(tp) < end[tp] for tp in partitions) and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=500)
            for batch in polled.values():
                records.extend(r.value for r in batch)
            if not polled and all(consumer.position(tp) >= end[tp] - 1 for tp in partitions):
                break  # only a transaction's commit marker is left, which a poll does not step over
        return records
    finally:
        consumer.close()
