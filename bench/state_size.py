"""Bytes of keyed state the clickstream job keeps per tracked shopper (issue 10), measured two ways.

    .venv/bin/python -m sandbox up redis kafka
    .venv/bin/python bench/state_size.py                            # 5,000 and 20,000 events
    .venv/bin/python bench/state_size.py --sizes 2000 8000 --no-heap

Why: the job keeps every shopper's cart, open sessions and login-step events in Flink keyed state (hashmap
backend: Java objects on the TaskManager's heap, all of it written into every checkpoint), so bytes per shopper
times the shoppers tracked within ``cart.state_ttl`` is the heap and the checkpoint a shop needs.

1. **Checkpoint**: the seeded workload (bench/flinkbench/workload.py, no clock tick, so reminders and sessions
   stay pending as in a live shop) goes to a fresh topic; the job runs unbounded on it with a checkpoint every
   2 s until its consumer group has committed the topic's end offsets and every shopper has a profile, then two
   more checkpoints; the newest complete ``chk-N`` folder (full snapshot) is summed and divided by the shoppers.
   Two sizes: the difference of bytes over the difference of shoppers cancels the fixed part (Kafka source
   splits, sink transactions, metadata). Beside it, with ``jcmd GC.class_histogram``, the JVM's live heap.
2. **Logic**: the same events replayed in-process through the job's pure steps (bench/baseline/steps.py over
   ``udfs/``, watermark ``newest - out_of_orderness - 1`` after each event, none at the end), and the JSON the
   job would store: ``CartState.to_dict()``, the open-sessions list, the login step's ``DeviceState``.
3. **Redis**: ``MEMORY USAGE`` of every profile hash and trigger-history sorted set the run wrote.

Prints a table; writes ``bench/results/state-size-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import redis
import yaml
from baseline.logic import CLICKSTREAM_CONFIG, load_logic
from baseline.steps import PartitionSteps
from flinkbench.jobrun import (
    JobRun,
    collect_outputs,
    delete_keys,
    delete_topics,
    discard_files,
    job_config,
    restart_cause,
    start_job,
    stop_job,
)
from flinkbench.results import RESULTS_DIR, git_sha, machine, write_result
from flinkbench.workload import START_MS, Workload, create_topics, expected_outputs, produce, workload
from kafka import KafkaConsumer, TopicPartition

from connectors.redis import GuardedFields, ProfileStore
from demo.clickstream import sample_clickstream
from jobs.config import ClickstreamConfig, load_config
from sandbox.settings import SandboxSettings, load_settings
from udfs.cart import NO_WATERMARK
from udfs.events import parse_event
from udfs.identity import DeviceState, needs_login_step, route

__all__ = ["LogicState", "replay_state", "main"]

CHECKPOINT_INTERVAL = "2s"
MORE_CHECKPOINTS = 2
POLL_S = 2.0
CATCH_UP_TIMEOUT_S = 900.0
JCMD_TIMEOUT_S = 180.0
_REST = re.compile(r"Rest endpoint listening at (\S+)")
_HISTOGRAM_ROW = re.compile(r"^\s*\d+:\s+(\d+)\s+(\d+)\s+(\S+)")
#: Flink's heap state and timers, and the rows PyFlink keys by: kept in the result whatever their rank
_STATE_CLASSES = re.compile(r"state\.heap\.|state\.ttl\.|TimerHeap|flink\.types\.Row")
_HISTOGRAM_TOTAL = re.compile(r"^Total\s+(\d+)\s+(\d+)")


def _log(message: str) -> None:
    print(f"{datetime.now().strftime('%H:%M:%S')} {message}", flush=True)


# --- 2. what the logic keeps per shopper ---------------------------------------------------------------------


class _NoProfiles(ProfileStore):
    """The replay's profile store: writes nothing (only the state is of interest here)."""

    def write_groups(self, person_id: str, groups: Sequence[GuardedFields]) -> int:
        return 0

    def record_trigger(self, person_id: str, trigger: Mapping[str, Any]) -> None:
        return None


class _NoOutputs:
    def trigger(self, value: bytes) -> None:
        return None

    def dead_letter(self, value: bytes) -> None:
        return None


@dataclass(frozen=True)
class LogicState:
    """JSON bytes of the state the job would hold at the end of the input (no final watermark)."""

    shoppers: int
    events: int
    people_with_cart: int
    cart_bytes: int
    people_with_sessions: int
    session_bytes: int
    devices_with_state: int
    device_bytes: int
    timers: int
    key_bytes: int

    @property
    def total_bytes(self) -> int:
        """All state bytes: values, and the keys of the people and devices holding any."""
        return self.cart_bytes + self.session_bytes + self.device_bytes + self.key_bytes


def replay_state(shoppers: int, run_tag: str, anonymous_carts: bool = False) -> LogicState:
    """Feed the workload's events, in the order they were produced, through the job's steps; measure what stays.

    The login step (``route``, keyed by device) runs beside them on the same watermark; the workload has no
    anonymous carts, so it keeps nothing unless ``anonymous_carts``.
    """
    logic = load_logic()
    max_events = load_config(CLICKSTREAM_CONFIG, ClickstreamConfig).cart.max_anonymous_events
    steps = PartitionSteps(logic, _NoProfiles("redis://unused"), _NoOutputs(), streaming=True)
    events = sample_clickstream(shoppers, run_tag, START_MS, anonymous_carts=anonymous_carts)
    devices: dict[str, DeviceState] = {}
    behind = logic.out_of_orderness_ms + 1
    watermark = NO_WATERMARK
    for doc in events:
        payload = json.dumps(doc, separators=(",", ":"))
        event = parse_event(payload)
        if needs_login_step(event):
            after, _ = route(devices.get(event.device_id), event, payload, max_events, watermark)
            if after is None:
                devices.pop(event.device_id, None)
            else:
                devices[event.device_id] = after
        steps.on_record(payload)  # advances the watermark after the event, as the job's source does
        watermark = max(watermark, event.event_time_ms - behind)
    carts = {p: json.dumps(s.to_dict(), separators=(",", ":")) for p, s in steps.carts.items()}
    # as the job stores them: json.dumps with its default separators (udfs/flink/clickstream.py _save_sessions)
    sessions = {
        p: json.dumps([[e.event_time_ms, e.payload] for e in pending]) for p, pending in steps.open_sessions.items()
    }
    device_json = {d: json.dumps(s.to_dict(), separators=(",", ":")) for d, s in devices.items()}
    keyed = set(carts) | set(sessions)
    return LogicState(
        shoppers=shoppers,
        events=len(events),
        people_with_cart=len(carts),
        cart_bytes=sum(len(v.encode()) for v in carts.values()),
        people_with_sessions=len(sessions),
        session_bytes=sum(len(v.encode()) for v in sessions.values()),
        devices_with_state=len(device_json),
        device_bytes=sum(len(v.encode()) for v in device_json.values()),
        timers=len(steps.timers),
        key_bytes=sum(len(k.encode()) for k in keyed) + sum(len(d.encode()) for d in device_json),
    )


# --- 1. the job's checkpoint, heap and Redis -------------------------------------------------------------------


@dataclass
class JobState:
    """One unbounded run of the job, measured once it had read everything."""

    events: int
    shoppers: int
    parallelism: object = None  # as the run's config had it (the shipped one's, or raised to the partitions)
    seconds_to_catch_up: float = 0.0
    checkpoint: str = ""
    checkpoint_bytes: int = 0
    checkpoint_files: int = 0
    shared_bytes: int = 0  # <job id>/shared: incremental snapshots' files; none with full snapshots
    vertex_state_bytes: dict[str, int] = field(default_factory=dict)  # from the REST API, when it answered
    heap_live_bytes: int | None = None
    heap_classes: dict[str, list[int]] = field(default_factory=dict)  # class → [instances, bytes]: largest 40, state
    jvm_rss_bytes: int | None = None
    profiles: int = 0
    profile_bytes: int = 0
    trigger_sets: int = 0
    trigger_set_bytes: int = 0
    dead_letters: int = 0


def _newest_checkpoint(run: JobRun) -> Path | None:
    """The newest complete ``chk-N`` folder of the run (``_metadata`` is written last)."""
    done = [p.parent for p in (run.config_path.parent / "checkpoints" / run.tag).glob("*/chk-*/_metadata")]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _folder_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def _caught_up(settings: SandboxSettings, run: JobRun, topic: str) -> bool:
    """The job's consumer group has committed (on a completed checkpoint) every partition's end offset."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=f"bench-{run.tag}")
    try:  # committed() reads the group's offsets without joining it
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        ends = consumer.end_offsets(partitions)
        return bool(partitions) and all((consumer.committed(tp) or 0) >= ends[tp] for tp in partitions)
    finally:
        consumer.close()


def _count_profiles(client: redis.Redis, prefix: str) -> int:
    return sum(1 for key in client.scan_iter(f"{prefix}*", 2_000) if not key.endswith(b":triggers"))


def _redis_bytes(client: redis.Redis, prefix: str, out: JobState) -> None:
    """``MEMORY USAGE`` (exact: ``SAMPLES 0``) of every key of the run, profiles and trigger histories apart."""
    keys = list(client.scan_iter(f"{prefix}*", 2_000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    for key, used in zip(keys, pipe.execute(), strict=True):
        if key.endswith(b":triggers"):
            out.trigger_sets += 1
            out.trigger_set_bytes += int(used or 0)
        else:
            out.profiles += 1
            out.profile_bytes += int(used or 0)


def _rest_url(run: JobRun) -> str | None:
    for path in sorted(run.flink_log_dir.glob("*.log")):
        found = _REST.search(path.read_text(errors="replace"))
        if found:
            return found.group(1) if found.group(1).startswith("http") else f"http://{found.group(1)}"
    return None


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - the job's own REST endpoint
        return json.loads(reply.read())


def _vertex_sizes(run: JobRun, checkpoint: Path) -> dict[str, int]:
    """Checkpointed state per job vertex (operator chain), from the MiniCluster's REST API; empty if unreachable."""
    base = _rest_url(run)
    if base is None:
        return {}
    job_id, checkpoint_id = checkpoint.parent.name, checkpoint.name.split("-")[1]
    try:
        names = {v["id"]: v["name"] for v in _get(f"{base}/jobs/{job_id}")["vertices"]}
        tasks = _get(f"{base}/jobs/{job_id}/checkpoints/details/{checkpoint_id}")["tasks"]
        return {
            names.get(vid, vid)[:80]: int(t.get("checkpointed_size", t.get("state_size", 0)))
            for vid, t in tasks.items()
        }
    except (OSError, KeyError, ValueError) as exc:
        _log(f"      REST API: {exc}")
        return {}


def _jvm_pid(session: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if int(fields[3]) == session and comm == "java":
            return int(entry.name)
    return None


def _heap(pid: int, out: JobState) -> None:
    """Live objects after a full GC (``jcmd GC.class_histogram``), and the JVM's RSS (with thread mode's Python)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out.jvm_rss_bytes = int(line.split()[1]) * 1024
    text = subprocess.run(  # noqa: S603 - fixed argv
        ["jcmd", str(pid), "GC.class_histogram"],  # noqa: S607 - the JDK's jcmd from PATH
        capture_output=True,
        text=True,
        check=True,
        timeout=JCMD_TIMEOUT_S,
    ).stdout
    rows = []
    for line in text.splitlines():
        if row := _HISTOGRAM_ROW.match(line):
            rows.append((row.group(3), int(row.group(1)), int(row.group(2))))
        elif total := _HISTOGRAM_TOTAL.match(line):
            out.heap_live_bytes = int(total.group(2))
    rows.sort(key=lambda r: -r[2])
    kept = rows[:40] + [r for r in rows[40:] if _STATE_CLASSES.search(r[0])]
    out.heap_classes = {name: [n, b] for name, n, b in kept}


def measure_job(load: Workload, bench_tag: str, args: argparse.Namespace, settings: SandboxSettings) -> JobState:
    """Produce ``load``, run the job unbounded on it until caught up and checkpointed, measure, clean up."""
    topic = f"bench-events-{bench_tag}-{load.events}"
    tag = f"{bench_tag}-state-{load.events}"
    run = job_config(
        "clickstream",
        tag,
        topic,
        args.workdir,
        {"execution.checkpointing.interval": CHECKPOINT_INTERVAL},
        bounded=False,
    )
    create_topics(settings.kafka_bootstrap, {topic: args.partitions, run.triggers_topic: 2, run.dead_letter_topic: 1})
    client = redis.Redis.from_url(settings.redis_url)
    written = yaml.safe_load(run.config_path.read_text())
    parallelism = written["flink"].get("parallelism.default")
    if written["kafka"].get("parallelism_from_partitions"):
        parallelism = f"{parallelism}, raised to the partitions"
    out = JobState(events=load.events, shoppers=load.shoppers, parallelism=parallelism)
    process = None
    try:
        load = produce(settings.kafka_bootstrap, topic, load, args.partitions, clock_tick=False)
        expected = expected_outputs(load).intent_profiles
        _log(f"   produced {load.events:,} events ({load.shoppers:,} shoppers); starting the job")
        started = time.monotonic()
        process = start_job(run, settings)
        caught_up_at: int | None = None  # the newest complete checkpoint when the job had read everything
        while True:
            time.sleep(POLL_S)
            cause = restart_cause(run) if process.poll() is None else f"exit {process.returncode}"
            if cause is not None:
                raise RuntimeError(f"the job failed: {cause} (see {run.log_path}, {run.flink_log_dir})")
            if time.monotonic() - started > CATCH_UP_TIMEOUT_S:
                raise RuntimeError(f"not caught up within {CATCH_UP_TIMEOUT_S:.0f} s")
            newest = _newest_checkpoint(run)
            number = int(newest.name.split("-")[1]) if newest else 0
            if caught_up_at is None:
                profiles = _count_profiles(client, run.key_prefix)
                if profiles == expected and _caught_up(settings, run, topic):
                    caught_up_at, out.seconds_to_catch_up = number, round(time.monotonic() - started, 1)
                    _log(f"   read everything after {out.seconds_to_catch_up:.0f} s (checkpoint {number})")
            elif newest is not None and number >= caught_up_at + MORE_CHECKPOINTS:
                try:
                    out.checkpoint_bytes, out.checkpoint_files = _folder_bytes(newest)
                except FileNotFoundError:
                    continue  # a newer one completed and Flink deleted this one meanwhile
                out.checkpoint = str(newest.relative_to(args.workdir))
                out.shared_bytes, _ = _folder_bytes(newest.parent / "shared")
                out.vertex_state_bytes = _vertex_sizes(run, newest)
                break
        if args.heap and (pid := _jvm_pid(process.pid)) is not None:
            try:
                _heap(pid, out)
            except (OSError, subprocess.SubprocessError) as exc:  # no JDK's jcmd here, or it timed out
                _log(f"   no heap histogram: {exc}")
        _redis_bytes(client, run.key_prefix, out)
    finally:
        if process is not None:
            stop_job(process)
            out.dead_letters = collect_outputs(run, settings).dead_letters
        delete_keys(settings, run.key_prefix)
        delete_topics(settings, [topic, run.triggers_topic, run.dead_letter_topic])
        client.close()
        if not args.keep:
            discard_files(run)
    return out


# --- the report -------------------------------------------------------------------------------------------------


def _per(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 1) if denominator else None


def summarize(jobs: list[JobState], logic: list[LogicState]) -> dict[str, Any]:
    """Per shopper for each size, and marginal (difference over difference) between the smallest and largest."""
    rows: dict[str, Any] = {"sizes": []}
    for job, state in zip(jobs, logic, strict=True):
        rows["sizes"].append(
            {
                "events": job.events,
                "shoppers": job.shoppers,
                "checkpoint_bytes_per_shopper": _per(job.checkpoint_bytes, job.shoppers),
                "heap_live_bytes_per_shopper": _per(job.heap_live_bytes or 0, job.shoppers),
                "redis_bytes_per_profile": _per(job.profile_bytes, job.profiles),
                "redis_bytes_per_trigger_set": _per(job.trigger_set_bytes, job.trigger_sets),
                "logic_json_bytes_per_shopper": _per(state.total_bytes, state.shoppers),
                "cart_json_bytes_per_cart": _per(state.cart_bytes, state.people_with_cart),
                "session_json_bytes_per_open": _per(state.session_bytes, state.people_with_sessions),
                "device_json_bytes_per_device": _per(state.device_bytes, state.devices_with_state),
            }
        )
    if len(jobs) >= 2:
        lo, hi = jobs[0], jobs[-1]
        shoppers = hi.shoppers - lo.shoppers
        classes = {
            name: [hi.heap_classes[name][0] - n, hi.heap_classes[name][1] - b]
            for name, (n, b) in lo.heap_classes.items()
            if name in hi.heap_classes
        }
        rows["marginal"] = {
            "shoppers": shoppers,
            "checkpoint_bytes_per_shopper": _per(hi.checkpoint_bytes - lo.checkpoint_bytes, shoppers),
            "heap_live_bytes_per_shopper": _per((hi.heap_live_bytes or 0) - (lo.heap_live_bytes or 0), shoppers),
            "jvm_rss_bytes_per_shopper": _per((hi.jvm_rss_bytes or 0) - (lo.jvm_rss_bytes or 0), shoppers),
            "logic_json_bytes_per_shopper": _per(logic[-1].total_bytes - logic[0].total_bytes, shoppers),
            "heap_classes_per_shopper": {
                name: [_per(n, shoppers), _per(b, shoppers)]
                for name, (n, b) in sorted(classes.items(), key=lambda kv: -kv[1][1])
                if abs(n) >= shoppers // 10
            },
        }
    return rows


def print_report(jobs: list[JobState], logic: list[LogicState], summary: Mapping[str, Any]) -> None:
    for job, state in zip(jobs, logic, strict=True):
        print(
            f"\n{job.events:,} events, {job.shoppers:,} shoppers, parallelism {job.parallelism} "
            f"(caught up after {job.seconds_to_catch_up:.0f} s)"
        )
        print(f"  checkpoint {job.checkpoint}: {job.checkpoint_bytes:,} bytes in {job.checkpoint_files} files")
        for vertex, size in job.vertex_state_bytes.items():
            print(f"    {size:>10,}  {vertex}")
        if job.heap_live_bytes is not None:
            print(f"  JVM live heap {job.heap_live_bytes:,} bytes, RSS {job.jvm_rss_bytes or 0:,} bytes")
        print(
            f"  Redis: {job.profiles:,} profiles {job.profile_bytes:,} bytes; "
            f"{job.trigger_sets:,} trigger sets {job.trigger_set_bytes:,} bytes; {job.dead_letters} dead letters"
        )
        print(
            f"  logic: carts {state.people_with_cart:,} × {_per(state.cart_bytes, state.people_with_cart)} B, "
            f"open sessions {state.people_with_sessions:,} × "
            f"{_per(state.session_bytes, state.people_with_sessions)} B, "
            f"devices {state.devices_with_state:,}, timers {state.timers:,}, keys {state.key_bytes:,} B"
        )
    print("\nper shopper:")
    print(json.dumps(summary, indent=2))


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[5_000, 20_000], help="events per run")
    parser.add_argument("--partitions", type=int, default=2, help="partitions of the input topic (default: 2)")
    parser.add_argument("--no-heap", dest="heap", action="store_false", help="skip jcmd GC.class_histogram")
    parser.add_argument("--keep", action="store_true", help="keep each run's config, logs and checkpoints")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for the JSON result")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    settings = load_settings()
    bench_tag = uuid.uuid4().hex[:8]
    args.workdir = Path(tempfile.mkdtemp(prefix="state-size-"))
    sha, started_at, host = git_sha(), datetime.now(UTC).isoformat(timespec="seconds"), machine()
    loads = [workload(size, f"ss{bench_tag}") for size in sorted(args.sizes)]
    jobs, logic = [], []
    for load in loads:
        _log(f"{load.events:,} events: the logic's state in-process")
        logic.append(replay_state(load.shoppers, load.run_tag))
        _log(f"{load.events:,} events: the job, unbounded, checkpoint every {CHECKPOINT_INTERVAL}")
        jobs.append(measure_job(load, bench_tag, args, settings))
    anonymous = replay_state(loads[-1].shoppers, loads[-1].run_tag, anonymous_carts=True)
    summary = summarize(jobs, logic)
    summary["anonymous_carts_device_json_bytes_per_device"] = _per(anonymous.device_bytes, anonymous.devices_with_state)
    print_report(jobs, logic, summary)
    payload = {
        "benchmark": "state-size",
        "git_sha": sha,
        "started_at": started_at,
        "machine": host,
        "config": {
            "command": " ".join(["bench/state_size.py", *(argv if argv is not None else sys.argv[1:])]),
            "partitions": args.partitions,
            "checkpoint_interval": CHECKPOINT_INTERVAL,
        },
        "summary": summary,
        "jobs": [asdict(j) for j in jobs],
        "logic": [asdict(s) for s in logic],
        "logic_anonymous_carts": asdict(anonymous),
        "workdir": str(args.workdir) if args.keep else "",
    }
    path = write_result("state-size", payload, cast(Path, args.out))
    print(f"\nresult: {path}")
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
