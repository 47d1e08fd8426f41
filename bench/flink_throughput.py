"""Sustained events/s through the Flink jobs, per job × execution mode (× Flink option set), on this machine.

    .venv/bin/python -m sandbox up redis kafka
    .venv/bin/python bench/flink_throughput.py --jobs floor clickstream   # the product beside the engine floor
    .venv/bin/python bench/flink_throughput.py --configs shipped low-latency     # what lower latency costs
    .venv/bin/python bench/flink_throughput.py --jobs clickstream --modes process --configs profile \
        --repeats 1 --keep-logs                                                 # cProfile tables in the job log

Each job runs as ``python jobs/<job>.py --config <temp.yaml>`` (its own embedded MiniCluster, as ``make run``
does), bounded, from the earliest offset of a topic holding a seeded clickstream (demo/clickstream.py; every
field derives from the shopper's number). Wall time from start to exit includes a fixed cost (JVM, job graph,
Python workers, the final checkpoint) that would swamp the rate, so each configuration runs at two sizes and
the rate is the marginal one: ``(N_large - N_small) / (T_large - T_small)``, computed per repetition from the
two sizes run back to back, then the median over repetitions. Configurations are interleaved within each
repetition, so a burst of load from something else on the machine hits them alike and their ratios hold.

Every run's outputs are checked against what the generator's stories must produce (reminders, browse
triggers, profiles, no dead letters); a rate is only reported from correct runs. A configuration whose job
fails (for example a Flink restart loop) is recorded with its error. Results: ``bench/results/
flink-throughput-<time>.json`` with the git SHA, the configuration and the machine; ``bench/report.py`` turns
them into a page.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flinkbench.configs import FLINK_CONFIGS, flink_options
from flinkbench.jobrun import (
    JOBS,
    collect_outputs,
    delete_keys,
    delete_topics,
    discard_files,
    job_config,
    shipped_flink_options,
    start_job,
    stop_job,
    wait_job,
)
from flinkbench.results import RESULTS_DIR, git_sha, machine, median, write_result
from flinkbench.usage import SessionUsage
from flinkbench.workload import Expected, Workload, check_outputs, create_topics, expected_outputs, produce, workload

from sandbox.settings import PROJECT_ROOT, SandboxSettings, load_settings

__all__ = ["Case", "RunRecord", "main", "run", "summarize"]

MODES = ("process", "thread")
DEFAULT_TIMEOUT_S = 420.0


@dataclass(frozen=True)
class Case:
    """One configuration measured: a job, an execution mode, a named set of Flink options, and the code.

    ``variant`` is empty for the working tree, or the name of a ``--variant`` (another copy of the project,
    e.g. a ``git worktree`` of an older commit: its job script and shipped config run, with it first on the
    jobs' ``PYTHONPATH``), so a change is measured side by side with the code it replaces.
    """

    job: str
    mode: str
    config: str
    variant: str = ""
    parallelism: int = 0  # 0: as the job config ships it (one subtask per partition)

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return (self.job, self.mode, self.config, self.variant, self.parallelism)

    @property
    def label(self) -> str:
        return " / ".join(str(x) for x in (*self.key[:4], f"p{self.parallelism}" if self.parallelism else "") if x)


@dataclass
class RunRecord:
    """One timed run of one case at one size."""

    job: str
    mode: str
    config: str
    repetition: int
    events: int
    seconds: float
    exit_code: int | None
    ok: bool
    problems: list[str]
    outputs: dict[str, Any]
    variant: str = ""
    logs: str = ""  # where the run's logs were kept (failed runs, or all with --keep-logs)
    parallelism: int = 0
    cpu_seconds: float = 0.0  # every process of the run (Python, JVM, Python workers), user + system
    peak_rss_mb: float = 0.0


def _interrupted(signum: int, frame: object) -> None:
    """SIGTERM ends the benchmark like Ctrl-C: the running job is stopped and the topics are deleted."""
    raise KeyboardInterrupt


def _remove_if_empty(workdir: Path) -> None:
    """The work folder keeps the files of failed runs (and all with ``--keep-logs``); remove it when empty."""
    leftovers = [p for p in workdir.iterdir() if p.name not in ("checkpoints", "flink")]
    if not leftovers:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        _log(f"logs kept in {workdir}")


def _log(message: str) -> None:
    print(f"{datetime.now().strftime('%H:%M:%S')} {message}", flush=True)


def _run_once(
    case: Case, load: Workload, expected: Expected, repetition: int, settings: SandboxSettings, args: argparse.Namespace
) -> RunRecord:
    tag = f"{uuid.uuid4().hex[:8]}-{case.job[:4]}-{case.mode[:4]}-{load.events}"
    root = Path(args.variants[case.variant]) if case.variant else PROJECT_ROOT
    options = flink_options(case.config, case.mode)
    run = job_config(
        case.job, tag, load.topic, args.workdir, options, bounded=True, root=root, parallelism=case.parallelism
    )
    create_topics(settings.kafka_bootstrap, {run.triggers_topic: 2, run.dead_letter_topic: 1})
    try:
        started = time.monotonic()
        extra_env = {"PYTHONPATH": str(root)} if case.variant else {}
        process = start_job(run, settings, extra_env)
        usage = SessionUsage(process.pid)
        usage.start()
        try:
            finished = wait_job(process, run, started, args.timeout, lambda s: _log(f"      ... {s:.0f} s"))
        finally:
            stop_job(process)  # only if interrupted: a finished job is left alone
            used = usage.stop()
        outputs = collect_outputs(run, settings)
    finally:
        delete_keys(settings, run.key_prefix)
        delete_topics(settings, [run.triggers_topic, run.dead_letter_topic])
    problems = [finished.error] if finished.error else check_outputs(case.job, expected, outputs)
    logs = f"{run.log_path}, {run.flink_log_dir}"
    if not problems and not args.keep_logs:
        discard_files(run)
        logs = ""
    return RunRecord(
        job=case.job,
        mode=case.mode,
        config=case.config,
        repetition=repetition,
        events=load.events,
        seconds=round(finished.seconds, 2),
        exit_code=finished.exit_code,
        ok=not problems,
        problems=problems,
        outputs=asdict(outputs),
        variant=case.variant,
        logs=logs,
        parallelism=case.parallelism,
        cpu_seconds=used.cpu_seconds,
        peak_rss_mb=used.peak_rss_mb,
    )


def summarize(cases: list[Case], runs: list[RunRecord], small: int, large: int) -> list[dict[str, Any]]:
    """Per case: the marginal rate of each repetition (both sizes correct), their median, and the fixed cost."""
    rows = []
    for case in cases:
        mine = [r for r in runs if (r.job, r.mode, r.config, r.variant, r.parallelism) == case.key]
        rates, fixed, reps, cpu = [], [], [], []
        failures = sorted({p for r in mine for p in r.problems})
        for rep in sorted({r.repetition for r in mine}):
            pair = {r.events: r for r in mine if r.repetition == rep}
            lo, hi = pair.get(small), pair.get(large)
            if not (lo and hi and lo.ok and hi.ok):
                continue
            if hi.seconds <= lo.seconds:
                failures.append(f"repetition {rep}: the large run was not slower than the small one; raise --large")
                continue
            rates.append(round((hi.events - lo.events) / (hi.seconds - lo.seconds), 1))
            cpu.append(round((hi.cpu_seconds - lo.cpu_seconds) / (hi.events - lo.events) * 1000, 3))
            reps.append(rep)
            fixed.append(round(lo.seconds - lo.events * (hi.seconds - lo.seconds) / (hi.events - lo.events), 1))
        rows.append(
            {
                **asdict(case),
                "events_per_s": median(rates),
                "rates": rates,
                "repetitions": reps,
                "fixed_cost_s": median(fixed),
                "cpu_s_per_1000_events": median(cpu),
                "peak_rss_mb": max((r.peak_rss_mb for r in mine if r.events == large and r.ok), default=None),
                "seconds_small": median([r.seconds for r in mine if r.events == small and r.ok]),
                "seconds_large": median([r.seconds for r in mine if r.events == large and r.ok]),
                "runs_ok": sum(r.ok for r in mine),
                "runs": len(mine),
                "problems": failures[:5],
            }
        )
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Side-by-side ratios within this run: each job / the engine floor, thread/process, each option set/shipped,
    each variant/working tree, at the same parallelism.

    ``ratio`` divides the medians; ``per_repetition`` divides the rates of the same repetition (measured
    minutes apart, so under the most similar load), and ``median_of_repetitions`` is their median.
    """
    by_key = {(r["job"], r["mode"], r["config"], r["variant"], r["parallelism"]): r for r in rows}
    out = []
    for (job, mode, config, variant, par), row in by_key.items():
        of = f"{config}, {variant}" if variant else config
        at = f", p{par}" if par else ""
        bases = []
        if job != "floor":
            bases.append((f"{job} / floor ({mode}, {of}{at})", by_key.get(("floor", mode, config, "", par))))
        if mode == "thread":
            bases.append((f"{job}: thread / process ({of}{at})", by_key.get((job, "process", config, variant, par))))
        if config != "shipped":
            bases.append((f"{config} / shipped ({mode}{at})", by_key.get((job, mode, "shipped", variant, par))))
        if variant:
            bases.append((f"{variant} / working tree ({mode}, {config}{at})", by_key.get((job, mode, config, "", par))))
        for what, base in bases:
            if not (base and base["events_per_s"] and row["events_per_s"]):
                continue
            theirs = dict(zip(base["repetitions"], base["rates"], strict=True))
            mine = dict(zip(row["repetitions"], row["rates"], strict=True))
            paired = [round(mine[rep] / theirs[rep], 2) for rep in mine if rep in theirs]
            out.append(
                {
                    "job": job,
                    "what": what,
                    "ratio": round(row["events_per_s"] / base["events_per_s"], 2),
                    "per_repetition": paired,
                    "median_of_repetitions": median(paired),
                }
            )
    return out


def print_table(rows: list[dict[str, Any]], ratio_rows: list[dict[str, Any]], small: int, large: int) -> None:
    print(f"\nmarginal events/s between {small:,} and {large:,} events (median of repetitions)")
    header = (
        f"{'job / mode / options / variant / parallelism':48} {'events/s':>9} {'per rep':20} {'cpu-s/1k':>8} "
        f"{'RSS MB':>7} {'fixed s':>7} {'ok':>6}"
    )
    print(header + "\n" + "-" * len(header))
    for r in rows:
        rate = f"{r['events_per_s']:,.0f}" if r["events_per_s"] else "none"
        reps = ", ".join(f"{x:,.0f}" for x in r["rates"]) or "-"
        fixed = f"{r['fixed_cost_s']:.0f}" if r["fixed_cost_s"] is not None else "-"
        cpu = f"{r['cpu_s_per_1000_events']:.2f}" if r["cpu_s_per_1000_events"] is not None else "-"
        rss = f"{r['peak_rss_mb']:,.0f}" if r["peak_rss_mb"] is not None else "-"
        label = " / ".join(str(r[k]) for k in ("job", "mode", "config", "variant") if r[k])
        label += f" / p{r['parallelism']}" if r["parallelism"] else ""
        print(f"{label:48} {rate:>9} {reps:20} {cpu:>8} {rss:>7} {fixed:>7} {r['runs_ok']:>3}/{r['runs']:<2}")
        for problem in r["problems"]:
            print(f"{'':20}! {problem[:160]}")
    for q in ratio_rows:
        paired = ", ".join(f"{x:.2f}" for x in q["per_repetition"])
        print(f"{q['job']:18} {q['what']:44} {q['ratio']:.2f}× (per repetition: {paired})")


def _measure(
    cases: list[Case], args: argparse.Namespace, settings: SandboxSettings
) -> tuple[list[RunRecord], int, int]:
    """Produce both workloads, then every case at both sizes, repetition by repetition; clean up after."""
    bench_tag = uuid.uuid4().hex[:8]
    loads: dict[int, Workload] = {}
    runs: list[RunRecord] = []
    try:
        for size in (args.small, args.large):
            load = workload(size, f"tp{bench_tag}")
            topic = f"bench-events-{bench_tag}-{load.events}"
            create_topics(settings.kafka_bootstrap, {topic: args.partitions})
            loads[load.events] = load
            _log(f"producing {load.events:,} events ({load.shoppers:,} shoppers) to {topic}")
            loads[load.events] = produce(settings.kafka_bootstrap, topic, load, args.partitions, args.clock_tick)
        small, large = sorted(loads)
        expected = {n: expected_outputs(load) for n, load in loads.items()}
        total, done = len(cases) * 2 * args.repeats, 0
        for rep in range(1, args.repeats + 1):
            for case in cases:
                for size in (small, large):
                    done += 1
                    _log(f"[{done}/{total}] {case.label}, {size:,} events, repetition {rep}")
                    record = _run_once(case, loads[size], expected[size], rep, settings, args)
                    runs.append(record)
                    verdict = "ok" if record.ok else f"WRONG: {'; '.join(record.problems)[:300]} (logs: {record.logs})"
                    _log(f"      {record.seconds:.1f} s, {verdict}")
    finally:
        delete_topics(settings, [f"bench-events-{bench_tag}-{n}" for n in loads])
        _remove_if_empty(args.workdir)
    return runs, small, large


def main(argv: list[str] | None = None) -> int:
    payload, path = run(argv)
    print(f"\nresult: {path}   page: .venv/bin/python bench/report.py")
    return 0 if all(r["ok"] for r in payload["runs"]) else 1


def run(argv: list[str] | None = None) -> tuple[dict[str, Any], Path]:
    """Measure as the command line says; returns the result (as written) and the file it was written to."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", nargs="+", choices=list(JOBS), default=list(JOBS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--configs", nargs="+", choices=list(FLINK_CONFIGS), default=["shipped"])
    parser.add_argument("--small", type=int, default=2_000, help="events in the small run (default: %(default)s)")
    parser.add_argument("--large", type=int, default=30_000, help="events in the large run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of every pair (default: %(default)s)")
    parser.add_argument(
        "--partitions", type=int, default=2, help="partitions of the input topic, = parallelism (default: %(default)s)"
    )
    parser.add_argument(
        "--parallelisms",
        nargs="+",
        type=int,
        default=[0],
        help="subtasks per operator, one case each (default: 0, as the job config ships it)",
    )
    parser.add_argument("--no-clock-tick", dest="clock_tick", action="store_false", help="see flinkbench/workload.py")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run every case from DIR, another copy of the project (e.g. a git worktree of the last commit)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep every run's logs (default: failed runs')")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds before a run is stopped")
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON result (default: bench/results)")
    args = parser.parse_args(argv)
    if not 0 < args.small < args.large:
        parser.error("--small must be positive and smaller than --large")

    settings = load_settings()
    args.variants = dict(v.split("=", 1) for v in args.variant)
    names = ["", *args.variants]
    cases = [
        Case(j, m, c, v, p)
        for p in args.parallelisms
        for m in args.modes
        for c in args.configs
        for v in names
        for j in args.jobs
    ]
    sha, started_at, host = git_sha(), datetime.now(UTC).isoformat(timespec="seconds"), machine()
    signal.signal(signal.SIGTERM, _interrupted)
    args.workdir = Path(tempfile.mkdtemp(prefix="flink-throughput-"))
    runs, small, large = _measure(cases, args, settings)

    rows = summarize(cases, runs, small, large)
    ratio_rows = ratios(rows)
    print_table(rows, ratio_rows, small, large)
    payload = {
        "benchmark": "flink-throughput",
        "git_sha": sha,
        "started_at": started_at,
        "machine": host,
        "config": {
            "command": " ".join(["bench/flink_throughput.py", *(argv if argv is not None else sys.argv[1:])]),
            "jobs": args.jobs,
            "modes": args.modes,
            "configs": {name: FLINK_CONFIGS[name] for name in args.configs},
            "small": small,
            "large": large,
            "repeats": args.repeats,
            "partitions": args.partitions,
            "variants": args.variants,
            "shipped_flink": {job: shipped_flink_options(job) for job in args.jobs},
            "clock_tick": args.clock_tick,
        },
        "summary": rows,
        "ratios": ratio_rows,
        "runs": [asdict(r) for r in runs],
    }
    path = write_result("flink-throughput", payload, args.out or RESULTS_DIR)
    return payload, path


if __name__ == "__main__":
    sys.exit(main())
