"""Run a job as its own process, as ``make run`` does, so a test can feed it live and kill it; or the clickstream
job bounded, in this process, to the end of its input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.kafka import kafka_source
from jobs.clickstream import DEFAULT_CONFIG as CLICKSTREAM_CONFIG
from jobs.clickstream import build as build_clickstream_job
from jobs.config import ClickstreamConfig, load_config
from jobs.flink_env import make_env
from jobs.runner import kafka_job_sinks
from sandbox.process import process_environment
from sandbox.settings import PROJECT_ROOT


def job_config(
    job: str,
    tmp_path: Path,
    name: str,
    topics: dict[str, str],
    flink: dict[str, Any],
    kafka: dict[str, Any] | None = None,
) -> Path:
    """The shipped config of ``job`` (``clickstream``) with this test's topics, group, Redis prefix and Flink
    options, unbounded, reading from the earliest offset, ``event_time.idleness`` 2 s.

    Its events topic must keep the record timestamps the collector (or :meth:`KafkaTestClient.produce`) stamps
    with the event times (``create_topics(..., create_time=True)``): the source makes the watermarks from them.

    :param kafka: more ``kafka:`` settings, e.g. ``{"bootstrap_servers": ...}`` for a broker of the test's own
        (the shipped ``${KAFKA_BOOTSTRAP_SERVERS:-...}`` would read the sandbox's from the environment).
    """
    cfg = yaml.safe_load((PROJECT_ROOT / f"flink-conf/jobs/{job}.yaml").read_text())
    cfg["job_name"] = name
    cfg["kafka"].update({"group_id": name, "starting_offsets": "earliest", "bounded": False, **(kafka or {})})
    cfg["topics"] = topics
    cfg["redis"]["key_prefix"] = f"{name}:profile:"
    cfg["event_time"]["idleness"] = "2s"
    cfg["flink"].update({"restart-strategy.type": "none", **flink})
    path = tmp_path / f"{name}-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_job(
    job: str, config: Path, log: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """``python jobs/<job>.py --config <config>``, as a user runs it (``env``: more environment variables)."""
    with open(log, "ab") as out:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, str(PROJECT_ROOT / f"jobs/{job}.py"), "--config", str(config), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            start_new_session=True,
            env={**process_environment(), "FLINK_LOG_DIR": str(log.parent / "flink"), **(env or {})},
        )


def kill(job: subprocess.Popen[bytes]) -> None:
    """SIGKILL the job's whole process group: no clean shutdown, like a lost machine."""
    try:
        os.killpg(job.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    job.wait(timeout=30)


@contextmanager
def running_job(
    job: str, config: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    process = start_job(job, config, log, env)
    try:
        yield process
    finally:
        kill(process)


def wait_for(
    condition: Callable[[], bool],
    jobs: list[subprocess.Popen[bytes]],
    log: Path,
    what: str,
    timeout_s: float = 300,
    explain: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition``; fail at once, naming the log, if a job exits instead.

    A failure carries the log's errors (and ``explain()``), since CI deletes the sandbox with the clone."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        for job in jobs:
            assert job.poll() is None, f"a job exited (code {job.returncode}) while waiting for {what}; see {log}"
        time.sleep(1)
    context = explain() if explain else ""
    pytest.fail(f"no {what} within {timeout_s:.0f} s; see {log}\n{context}\n{log_errors(log)}")


def log_errors(log: Path, lines: int = 30) -> str:
    """The last error lines of a log file, or of the current ``*.log`` files of a log folder."""
    files = sorted(log.glob("*.log")) if log.is_dir() else [log]
    found: list[str] = []
    for path in files:
        if path.exists():
            text = path.read_text(errors="replace").splitlines()
            found += [f"{path.name}: {line}" for line in text if "ERROR" in line or "Exception" in line]
    return "\n".join(found[-lines:]) or f"(no error lines in {log})"


def bounded_clickstream_config(name: str, topics: dict[str, str]) -> ClickstreamConfig:
    """The shipped clickstream job's config, bounded, on this test's topics, group and Redis prefix.

    A bounded run makes no watermarks: nothing in it is late, and every timer fires at the end of its input, in
    event-time order, so it gives the batch model's triggers whatever the record timestamps (and heartbeats) are.
    """
    cfg = load_config(CLICKSTREAM_CONFIG, ClickstreamConfig, {"kafka.bounded": True})
    return cfg.model_copy(
        update={
            "job_name": name,
            "kafka": cfg.kafka.model_copy(update={"group_id": name, "starting_offsets": "earliest"}),
            "topics": cfg.topics.model_copy(update=topics),
            "redis": cfg.redis.model_copy(update={"key_prefix": f"{name}:profile:"}),
        }
    )


def run_clickstream_job(cfg: ClickstreamConfig, flink: dict[str, Any] | None = None) -> None:
    """The clickstream job's ``build()`` on an embedded cluster in this process, with the real Kafka source and
    sinks (triggers exactly once), to the end of its bounded input."""
    env = make_env(cfg.job_name, {**cfg.flink, **(flink or {})})
    build_clickstream_job(env, cfg, kafka_source(cfg.kafka, cfg.topics.events), kafka_job_sinks(cfg))
    env.execute(cfg.job_name)


def delivery_job_config(
    tmp_path: Path,
    name: str,
    retries: dict[str, Any] | None = None,
    providers: dict[str, Any] | None = None,
    flink: dict[str, Any] | None = None,
) -> Path:
    """The shipped delivery config with this test's topics (``<name>-triggers``, ``-deliveries``, ``-dlq``), Redis
    prefixes (``<name>:profile:``, ``<name>:ledger:``), no holdout or quiet hours, fast retries, checkpoints under
    ``tmp_path``, and no restart inside the job: a test that kills it starts it again itself."""
    cfg = yaml.safe_load((PROJECT_ROOT / "flink-conf/jobs/email_delivery.yaml").read_text())
    cfg["job_name"] = name
    cfg["kafka"].update({"group_id": name, "starting_offsets": "committed", "bounded": False})
    cfg["topics"] = delivery_topics(name)
    cfg["redis"]["key_prefix"] = f"{name}:profile:"
    cfg["ledger_prefix"] = f"{name}:ledger:"
    cfg["guardrails"].update({"holdout_percent": 0, "quiet_start": "00:00", "quiet_end": "00:00"})
    fast = {"initial_backoff": "100ms", "max_backoff": "500ms", "defer_initial": "1s", "reconcile_after": "1s"}
    cfg["retries"].update({**fast, **(retries or {})})
    cfg["providers"].update(providers or {})
    cfg["flink"].update(
        {
            "execution.checkpointing.dir": (tmp_path / "checkpoints").as_uri(),
            "restart-strategy.type": "none",
            **(flink or {}),
        }
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def delivery_topics(name: str) -> dict[str, str]:
    return {"triggers": f"{name}-triggers", "deliveries": f"{name}-deliveries", "dead_letter": f"{name}-dlq"}
