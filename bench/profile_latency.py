"""Click-to-profile latency of a clickstream job: from a producer's send to the profile hash showing the click.

    .venv/bin/python -m sandbox up redis kafka
    .venv/bin/python bench/profile_latency.py           # shipped vs low-latency options, process and thread mode
    .venv/bin/python bench/profile_latency.py --cases shipped:process low-latency:process --probes 200
    .venv/bin/python bench/profile_latency.py --job clickstream --cases shipped:thread low-latency:thread
    .venv/bin/python bench/profile_latency.py --cases shipped:process shipped:process@100 shipped:process@250

The product promises a usable profile within 200 ms of the click. Here the job (the cart job unless
``--job``) runs unbounded as its own process (as under ``make run``), reading a fresh 4-partition topic,
the shape of ``clickstream.events``.
Once it is up, probes go one at a time: a ``Product Added`` for a person never seen before, stamped with the
current time, sent with ``acks=1`` and flushed; the clock starts just before the send and stops when Redis
has ``<prefix><person>`` (polled every half millisecond). The next probe waits for the previous one, so the
probes never queue behind each other: without load this is the latency of an idle pipeline, the floor of
what a shopper sees. A case ``...@<events/s>`` adds other shoppers' traffic at that steady rate (cart adds
stamped now, from a pool of returning people, sent by their own producer) from the moment the job is live:
the latency a shopper sees while the shop is busy.

Cases (``<option set>:<mode>[@<events/s>]``, option sets in flinkbench/configs.py) run in rounds, one job
start each, and
alternate within a round, so slow phases of a shared machine hit all of them; percentiles are over all
measured probes of a case. Results: ``bench/results/flink-latency-<time>.json``; ``bench/report.py`` draws them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from flinkbench.configs import FLINK_CONFIGS, flink_options
from flinkbench.jobrun import delete_keys, delete_topics, job_config, restart_cause, start_job, stop_job
from flinkbench.results import RESULTS_DIR, git_sha, machine, median, percentile, write_result
from flinkbench.workload import create_topics
from kafka import KafkaProducer

from demo.clickstream import iso
from sandbox.settings import SandboxSettings, load_settings

__all__ = ["Probe", "main"]

JOBS = ("clickstream",)  # writes the profile on every event
PROMISE_MS = 200.0
POLL_INTERVAL_S = 0.0005
PROBE_TIMEOUT_S = 15.0
GIVE_UP_AFTER = 5  # probes in a row over the timeout: the job has fallen behind its input for good
READY_TIMEOUT_S = 240.0
GAP_S = 0.02  # between probes: the job is idle when each one arrives
PARTITIONS = 4  # as clickstream.events (flink-conf/topics.yaml)
DEFAULT_CASES = ["shipped:process", "low-latency:process", "shipped:thread", "low-latency:thread"]


class JobFailed(RuntimeError):
    """The job under test exited or restarted; the case is recorded with this message."""


@dataclass
class Probe:
    """Sends one click at a time and times it until its profile exists."""

    producer: KafkaProducer
    store: redis.Redis
    topic: str
    key_prefix: str
    tag: str
    timeout_s: float = PROBE_TIMEOUT_S
    sent: int = 0
    ack_ms: list[float] = field(default_factory=list)

    def click(self) -> float | None:
        """One probe; returns milliseconds from send to visible profile, or None after ``timeout_s``."""
        self.sent += 1
        person = f"lat-{self.tag}-{self.sent:05d}"
        body = json.dumps(_product_added(person, self.tag, self.sent), separators=(",", ":")).encode()
        key = f"{self.key_prefix}{person}"
        started = time.perf_counter()
        self.producer.send(self.topic, key=person.encode(), value=body)
        self.producer.flush()
        self.ack_ms.append((time.perf_counter() - started) * 1000)
        deadline = started + self.timeout_s
        while time.perf_counter() < deadline:
            if self.store.exists(key):
                return (time.perf_counter() - started) * 1000
            time.sleep(POLL_INTERVAL_S)
        return None


class BackgroundLoad(threading.Thread):
    """Other shoppers' clicks at a steady rate, in 10 ms ticks, until stopped.

    A shop's mix, not one kind of event from a few people: 20,000 shoppers in turn (at 1,000 events/s each
    clicks every 20 s), four product views to one cart add. (Until 2026-12-03 this was 500 shoppers adding to
    their carts twice a second each, whose sessions and carts grow without end: a bot's traffic, on which the
    rescoring of every event over its whole session costs more with each click.)"""

    TICK_S = 0.01
    PEOPLE = 20_000
    ADD_EVERY = 5

    def __init__(self, bootstrap: str, topic: str, tag: str, rate: float) -> None:
        super().__init__(daemon=True, name="background-load")
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
        self.topic, self.tag, self.rate = topic, tag, rate
        self.sent = 0
        self.seconds = 0.0
        self._stop_requested = threading.Event()

    def run(self) -> None:
        started = time.perf_counter()
        while not self._stop_requested.is_set():
            due = int((time.perf_counter() - started) * self.rate)
            while self.sent < due:
                person = f"load-{self.tag}-{self.sent % self.PEOPLE:05d}"
                click = _product_added(person, f"{self.tag}-load", self.sent)
                if (self.sent // self.PEOPLE) % self.ADD_EVERY:
                    click["event"] = "Product Viewed"
                body = json.dumps(click, separators=(",", ":"))
                self.producer.send(self.topic, key=person.encode(), value=body.encode())
                self.sent += 1
            time.sleep(self.TICK_S)
        self.seconds = time.perf_counter() - started
        self.producer.close()

    def stop(self) -> float:
        """Stop sending; returns the rate achieved (events/s)."""
        self._stop_requested.set()
        self.join()
        return self.sent / self.seconds if self.seconds else 0.0


def _product_added(person: str, tag: str, n: int) -> dict[str, Any]:
    """A valid Segment ``Product Added`` for a new person, stamped now (so it is never behind the watermark)."""
    return {
        "type": "track",
        "event": "Product Added",
        "userId": person,
        "messageId": f"lat-{tag}-{n}",
        "timestamp": iso(int(time.time() * 1000)),
        "properties": {
            "product_id": "sku-boot",
            "name": "Trail Boot",
            "price": 129.0,
            "quantity": 1,
            "currency": "USD",
            "cart_id": f"cart-{person}",
        },
        "context": {"library": {"name": "cartpulse-bench", "version": "1"}},
    }


def _log(message: str) -> None:
    print(f"{datetime.now().strftime('%H:%M:%S')} {message}", flush=True)


def _wait_ready(probe: Probe, process: Any, run: Any) -> float:
    """Send a probe every 2 s until one shows up: the job is reading and writing. Returns seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise JobFailed(f"the job exited (code {process.returncode}); see {run.log_path}")
        if (cause := restart_cause(run)) is not None:
            raise JobFailed(f"Flink restarted the job: {cause}")
        if probe.click() is not None:
            return time.monotonic() - started
    raise JobFailed(f"no profile within {READY_TIMEOUT_S:.0f} s of starting; see {run.log_path}")


def _measure_case(
    case: str, round_no: int, settings: SandboxSettings, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Start the job with the case's options, wait until it is live, time the probes, stop it."""
    config, mode, rate = parse_case(case)
    tag = f"{uuid.uuid4().hex[:8]}-lat-{config}-{mode}-{rate:g}"
    topic = f"bench-clicks-{tag}"
    create_topics(settings.kafka_bootstrap, {topic: PARTITIONS})
    run = job_config(args.job, tag, topic, workdir, flink_options(config, mode), bounded=False)
    create_topics(settings.kafka_bootstrap, {run.triggers_topic: 2, run.dead_letter_topic: 1})
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks=1, linger_ms=0)
    store = redis.Redis.from_url(settings.redis_url)
    probe = Probe(producer, store, topic, run.key_prefix, tag, timeout_s=args.probe_timeout)
    result: dict[str, Any] = {"case": case, "round": round_no, "samples_ms": [], "timeouts": 0, "error": None}
    load = BackgroundLoad(settings.kafka_bootstrap, topic, tag, rate) if rate else None
    process = start_job(run, settings)
    try:
        result["ready_s"] = round(_wait_ready(probe, process, run), 1)
        if load:
            load.start()
        _log(f"      live after {result['ready_s']:.0f} s; {args.warmup} warm-up probes, then {args.probes} measured")
        missed_in_a_row = 0
        for n in range(args.warmup + args.probes):
            latency = probe.click()
            missed_in_a_row = missed_in_a_row + 1 if latency is None else 0
            if missed_in_a_row == GIVE_UP_AFTER:
                raise JobFailed(f"fell behind: {GIVE_UP_AFTER} probes in a row took over {args.probe_timeout:g} s")
            if n >= args.warmup:
                if latency is None:
                    result["timeouts"] += 1
                else:
                    result["samples_ms"].append(round(latency, 2))
            if (n + 1) % 50 == 0:
                done = result["samples_ms"]
                _log(f"      {n + 1} probes; median so far {median(done) or 0:.0f} ms")
            time.sleep(GAP_S)
        cause = restart_cause(run)
        if process.poll() is not None or cause is not None:
            raise JobFailed(f"the job stopped or restarted during the probes ({cause}); see {run.log_path}")
    except JobFailed as exc:
        result["error"] = str(exc)
        _log(f"      FAILED: {exc}")
    finally:
        if load:
            result["load_rate"] = round(load.stop(), 1) if load.is_alive() else 0.0
        stop_job(process)
        producer.close()
        store.close()
        result["ack_ms_median"] = round(median(probe.ack_ms) or 0.0, 2)
        delete_keys(settings, run.key_prefix)
        delete_topics(settings, [topic, run.triggers_topic, run.dead_letter_topic])
    return result


def parse_case(case: str) -> tuple[str, str, float]:
    """``shipped:process@100`` → (option set, mode, background events/s)."""
    options, _, rate = case.partition("@")
    config, _, mode = options.partition(":")
    return config, mode, float(rate or 0)


def summarize(cases: list[str], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Percentiles per case over all its measured probes, and the share within the 200 ms promise."""
    rows = []
    for case in cases:
        mine = [r for r in results if r["case"] == case]
        samples = [s for r in mine for s in r["samples_ms"]]
        pct = {f"p{int(q * 100)}": percentile(samples, q) for q in (0.5, 0.95, 0.99)}
        rows.append(
            {
                "case": case,
                "probes": len(samples),
                "timeouts": sum(r["timeouts"] for r in mine),
                **pct,
                "max": max(samples) if samples else None,
                "within_promise": round(sum(s <= PROMISE_MS for s in samples) / len(samples), 3) if samples else None,
                "round_p50s": [median(r["samples_ms"]) for r in mine],
                "load_rates": [r.get("load_rate") for r in mine if r.get("load_rate")],
                "errors": [r["error"] for r in mine if r["error"]],
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\nclick → profile latency, ms (sequential probes; promise: {PROMISE_MS:.0f} ms)")
    header = f"{'case':22} {'probes':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} {'≤200 ms':>8}  round p50s"
    print(header + "\n" + "-" * len(header))
    for r in rows:

        def f(v: float | None) -> str:
            return f"{v:,.1f}" if v is not None else "-"

        share = f"{r['within_promise'] * 100:.0f} %" if r["within_promise"] is not None else "-"
        rounds = ", ".join(f(x) for x in r["round_p50s"])
        if r["load_rates"]:
            rounds += f"  (load sent: {', '.join(f'{x:,.0f}' for x in r['load_rates'])} events/s)"
        print(
            f"{r['case']:22} {r['probes']:>6} {f(r['p50']):>8} {f(r['p95']):>8} {f(r['p99']):>8} "
            f"{f(r['max']):>8} {share:>8}  {rounds}"
        )
        for error in r["errors"]:
            print(f"{'':24}! {error[:200]}")
    base = next((r for r in rows if r["case"] == "shipped:process"), None)
    for r in rows:
        if base and r is not base and r["p50"] and base["p50"]:
            print(
                f"shipped:process / {r['case']}: p50 {base['p50'] / r['p50']:.1f}×, p99 {base['p99'] / r['p99']:.1f}×"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="<option set>:<mode> (default: %(default)s)")
    parser.add_argument("--job", choices=JOBS, default=JOBS[0], help="the job under test (default: %(default)s)")
    parser.add_argument("--probes", type=int, default=100, help="measured probes per case and round")
    parser.add_argument("--warmup", type=int, default=10, help="probes sent first and not counted")
    parser.add_argument("--rounds", type=int, default=3, help="job starts per case (default: %(default)s)")
    parser.add_argument(
        "--probe-timeout", type=float, default=PROBE_TIMEOUT_S, help="seconds a probe may take (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON result (default: bench/results)")
    args = parser.parse_args(argv)
    for case in args.cases:
        try:
            config, mode, rate = parse_case(case)
        except ValueError:
            config, mode, rate = "", "", -1.0
        if config not in FLINK_CONFIGS or mode not in ("process", "thread") or rate < 0:
            parser.error(f"{case!r}: use <{'|'.join(FLINK_CONFIGS)}>:<process|thread>[@<events/s>]")

    settings = load_settings()
    sha, started_at, host = git_sha(), datetime.now(UTC).isoformat(timespec="seconds"), machine()
    results = []
    with tempfile.TemporaryDirectory(prefix="flink-latency-") as workdir:
        for round_no in range(1, args.rounds + 1):
            for case in args.cases:
                _log(f"round {round_no}/{args.rounds}: {case} — starting {args.job}")
                results.append(_measure_case(case, round_no, settings, args, Path(workdir)))
    rows = summarize(args.cases, results)
    print_table(rows)
    payload = {
        "benchmark": "flink-latency",
        "git_sha": sha,
        "started_at": started_at,
        "machine": host,
        "config": {
            "command": " ".join(["bench/profile_latency.py", *(argv if argv is not None else sys.argv[1:])]),
            "job": args.job,
            "cases": args.cases,
            "option_sets": {c.split(":")[0]: FLINK_CONFIGS[c.split(":")[0]] for c in args.cases},
            "probes": args.probes,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "partitions": PARTITIONS,
            "promise_ms": PROMISE_MS,
            "poll_interval_ms": POLL_INTERVAL_S * 1000,
            "probe_timeout_s": args.probe_timeout,
            "producer": "kafka-python, acks=1, linger_ms=0, flushed per probe",
        },
        "summary": rows,
        "rounds": results,
    }
    path = write_result("flink-latency", payload, args.out or RESULTS_DIR)
    print(f"\nresult: {path}   page: .venv/bin/python bench/report.py")
    return 0 if all(not r["errors"] and not r["timeouts"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
