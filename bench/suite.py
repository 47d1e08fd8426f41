"""``make bench``: the four contenders side by side on one seeded workload, then BENCHMARKS.md's table and chart.

    make bench                                     # the whole comparison (about 40 minutes here)
    make bench BENCH_ARGS="--quick"                # thread mode, parallelism 1 and 4, smaller workload

1. **engine floor** (bench/floor_job.py) and 2. **the product** (jobs/clickstream.py, as shipped) through the real
   broker, in thread and process mode, at parallelism 1, 2 and 4 (bench/flink_throughput.py: marginal events/s
   between a small and a large run, so start-up cancels out; every run's outputs checked);
3. **a plain-Python baseline** (bench/baseline/): one process per partition applying the same udfs/ logic;
4. **the collector** (bench/collector_load.py): SDK batches of 200 and single calls;
then click → profile latency of the product at a steady offered rate (bench/profile_latency.py).

Ratios are the claim (the machines are shared); the absolute numbers say how busy the machine was. Everything
goes into ``bench/results/`` (JSON), ``bench/results/bench-<time>.png`` and the "make bench" section of
BENCHMARKS.md, which this rewrites between its markers with the command, the machine and the git SHA.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import collector_load
import flink_throughput
import profile_latency
from flinkbench.jobrun import delete_keys, delete_topics
from flinkbench.results import RESULTS_DIR, git_sha, machine, write_result
from flinkbench.workload import create_topics, produce, workload

from sandbox.settings import PROJECT_ROOT, SandboxSettings, load_settings

__all__ = ["main"]

BENCHMARKS_MD = PROJECT_ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"
PARTITIONS = 4


def _log(message: str) -> None:
    print(f"{datetime.now().strftime('%H:%M:%S')} [bench] {message}", flush=True)


def _baseline(settings: SandboxSettings, size: int, tag: str) -> dict[str, Any]:
    """One run of the plain-Python baseline over a fresh topic holding ``size`` events; its JSON report."""
    load = workload(size, f"bl{tag}")
    topic, triggers, dlq = f"bench-bl-events-{tag}-{size}", f"bench-bl-triggers-{tag}", f"bench-bl-dlq-{tag}"
    prefix = f"bench-bl-{tag}:profile:"
    create_topics(settings.kafka_bootstrap, {topic: PARTITIONS, triggers: 2, dlq: 1})
    try:
        produce(settings.kafka_bootstrap, topic, load, PARTITIONS, clock_tick=True)
        argv = [
            sys.executable,
            "-m",
            "bench.baseline",
            "--bootstrap",
            settings.kafka_bootstrap,
            "--redis-url",
            settings.redis_url,
            "--topic",
            topic,
            "--triggers-topic",
            triggers,
            "--dead-letter-topic",
            dlq,
            "--key-prefix",
            prefix,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=PROJECT_ROOT, check=False, timeout=3_600)  # noqa: S603
        if done.returncode != 0:
            return {"error": (done.stderr or done.stdout)[-800:], "events": load.events}
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        report["workload_events"] = load.events
        return report
    finally:
        delete_keys(settings, prefix)
        delete_topics(settings, [topic, triggers, dlq])


def _baseline_rate(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    """The baseline's marginal rate and CPU, as the Flink contenders' (start-up cancels out)."""
    if "error" in small or "error" in large:
        return {"error": small.get("error") or large.get("error")}
    events = large["events"] - small["events"]
    seconds = large["seconds"] - small["seconds"]
    return {
        "events_per_s": round(events / seconds, 1) if seconds > 0 else None,
        "cpu_s_per_1000_events": round((large["cpu_seconds"] - small["cpu_seconds"]) / events * 1000, 3),
        "peak_rss_mb": large["peak_rss_mb"],
        "triggers": large["triggers"],
        "runs": {"small": small, "large": large},
    }


def _collector(requests: int) -> list[dict[str, Any]]:
    shapes = [
        ("batches of 200, 8 connections", 200, 8, max(50, requests // 20)),
        ("single calls, 32 connections", 1, 32, requests),
    ]
    out = []
    for label, batch, concurrency, count in shapes:
        _log(f"collector: {label}, {count:,} requests")
        config = collector_load.LoadConfig(
            requests=count, concurrency=concurrency, batch=batch, warmup=min(200, count // 10)
        )
        result = collector_load.run(config, label)
        out.append(
            {
                "shape": label,
                "events_per_s": result.events_per_s,
                "p50_ms": result.latency_ms.get("p50"),
                "p99_ms": result.latency_ms.get("p99"),
                "statuses": result.statuses,
                "server_cpu_ms_per_1000_events": result.server_cpu_ms_per_1000_events,
            }
        )
    return out


def _latency(rate: int, probes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as out:
        cases = ["shipped:thread", f"shipped:thread@{rate}"]
        profile_latency.main(["--cases", *cases, "--probes", str(probes), "--rounds", "1", "--out", out])
        files = sorted(Path(out).glob("*.json"))
        payload: dict[str, Any] = json.loads(files[-1].read_text()) if files else {}
    return {"cases": payload.get("summary", []), "config": payload.get("config", {})}


def _chart(
    flink_rows: list[dict[str, Any]], baseline: dict[str, Any], collector: list[dict[str, Any]], path: Path
) -> None:
    """Events/s per contender and parallelism, one bar each: the picture of the table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values, colours = [], [], []
    palette = {"floor": "#9aa5b1", "clickstream": "#d9480f"}
    for row in flink_rows:
        if row["events_per_s"]:
            labels.append(f"{row['job']}\n{row['mode']} p{row['parallelism']}")
            values.append(row["events_per_s"])
            colours.append(palette.get(row["job"], "#495057"))
    if baseline.get("events_per_s"):
        labels.append(f"plain Python\n{PARTITIONS} processes")
        values.append(baseline["events_per_s"])
        colours.append("#1c7ed6")
    for shape in collector:
        if shape.get("events_per_s"):
            labels.append("collector\n" + shape["shape"].split(",")[0])
            values.append(shape["events_per_s"])
            colours.append("#2b8a3e")
    fig, ax = plt.subplots(figsize=(max(8, len(labels) * 0.9), 4.5))
    ax.bar(range(len(values)), values, color=colours)
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_ylabel("events/s (marginal)")
    ax.set_yscale("log")
    ax.set_title(f"make bench, {datetime.now(UTC).strftime('%Y-%m-%d')}, {os.cpu_count()} cores, git {git_sha()}")
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(result: dict[str, Any], chart: Path) -> str:
    flink = result["flink"]
    lines = [
        BEGIN,
        f"Measured {result['started_at']} at git `{result['git_sha']}` on {result['machine']['nproc']} cores "
        f"(load average before {result['machine']['load_average_before']}), all four contenders in one run:",
        "",
        "```",
        result["command"],
        "```",
        "",
        f"![make bench]({chart.relative_to(PROJECT_ROOT)})",
        "",
        f"Flink contenders: marginal events/s between {flink['small']:,} and {flink['large']:,} events, "
        f"{PARTITIONS} partitions, median of {flink['repeats']} repetition(s); every run's triggers, profiles "
        "and dead letters checked against the workload.",
        "",
        "| contender | mode | parallelism | events/s | CPU-s per 1,000 events | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in flink["summary"]:
        rate = f"{row['events_per_s']:,.0f}" if row["events_per_s"] else "failed: " + "; ".join(row["problems"])[:80]
        cpu = row.get("cpu_s_per_1000_events")
        lines.append(
            f"| {'engine floor' if row['job'] == 'floor' else 'the product (clickstream job)'} | {row['mode']} | "
            f"{row['parallelism']} | {rate} | {cpu if cpu is not None else '-'} | {row.get('peak_rss_mb') or '-'} |"
        )
    base = result["baseline"]
    if base.get("events_per_s"):
        lines.append(
            f"| plain-Python baseline | {PARTITIONS} processes | {PARTITIONS} | {base['events_per_s']:,.0f} | "
            f"{base['cpu_s_per_1000_events']} | {base['peak_rss_mb']} |"
        )
    else:
        lines.append(f"| plain-Python baseline | | | failed: {str(base.get('error'))[:80]} | | |")
    lines += ["", "| ratio | value (per repetition) |", "| --- | --- |"]
    for q in flink["ratios"]:
        lines.append(f"| {q['what']} | **{q['ratio']:.2f}** ({', '.join(f'{x:.2f}' for x in q['per_repetition'])}) |")
    for q in result["baseline_ratios"]:
        lines.append(f"| {q['what']} | **{q['ratio']:.2f}** |")
    lines += ["", "| collector | events/s | accept p50 ms | accept p99 ms |", "| --- | --- | --- | --- |"]
    for shape in result["collector"]:
        lines.append(
            f"| {shape['shape']} | {shape.get('events_per_s', 0):,.0f} | {shape.get('p50_ms', '-')} | "
            f"{shape.get('p99_ms', '-')} |"
        )
    lat = result.get("latency", {}).get("cases", [])
    if lat:
        lines += ["", "| click → profile (Kafka → Redis), the product | p50 ms | p95 ms | p99 ms | within 200 ms |"]
        lines += ["| --- | --- | --- | --- | --- |"]
        for c in lat:
            share = c.get("within_promise")
            within = f"{share * 100:.0f} %" if share is not None else "-"
            lines.append(f"| {c.get('case')} | {c.get('p50')} | {c.get('p95')} | {c.get('p99')} | {within} |")
    lines += ["", f"Raw results: `{result['result_file']}` and the files it names.", END]
    return "\n".join(lines)


def _write_section(text: str) -> None:
    doc = BENCHMARKS_MD.read_text()
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) :]
    else:
        doc = doc.rstrip() + "\n\n## make bench: the four contenders side by side\n\n" + text + "\n"
    BENCHMARKS_MD.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="thread mode, parallelism 1 and 4, 30,000 events")
    parser.add_argument("--events", type=int, default=60_000, help="events in the large run (default: %(default)s)")
    parser.add_argument("--small", type=int, default=2_000, help="events in the small run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=["thread", "process"])
    parser.add_argument("--parallelisms", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--collector-requests", type=int, default=20_000)
    parser.add_argument("--latency-rate", type=int, default=1_000, help="offered events/s for the latency case")
    parser.add_argument("--latency-probes", type=int, default=60)
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md as it is")
    args = parser.parse_args(argv)
    if args.quick:
        args.modes, args.parallelisms, args.events = ["thread"], [1, 4], 30_000
    command = "make bench" + (f' BENCH_ARGS="{" ".join(argv or sys.argv[1:])}"' if (argv or sys.argv[1:]) else "")
    settings = load_settings()
    started = time.monotonic()
    result: dict[str, Any] = {
        "benchmark": "make-bench",
        "git_sha": git_sha(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": command,
    }

    _log(f"1-2/4 engine floor and the product: modes {args.modes}, parallelism {args.parallelisms}")
    flink_argv = ["--jobs", "floor", "clickstream", "--modes", *args.modes, "--partitions", str(PARTITIONS)]
    flink_argv += ["--parallelisms", *map(str, args.parallelisms), "--small", str(args.small)]
    flink_argv += ["--large", str(args.events), "--repeats", str(args.repeats)]
    flink, flink_path = flink_throughput.run(flink_argv)
    result["flink"] = {**{k: flink["config"][k] for k in ("small", "large", "repeats")}, "summary": flink["summary"]}
    result["flink"]["ratios"] = flink["ratios"]
    result["flink"]["result_file"] = str(flink_path.relative_to(PROJECT_ROOT))

    _log("3/4 the plain-Python baseline, same workload, one process per partition")
    tag = uuid.uuid4().hex[:6]
    small_run = _baseline(settings, args.small, tag)
    large_run = _baseline(settings, args.events, tag + "L")
    result["baseline"] = _baseline_rate(small_run, large_run)
    product = [r for r in flink["summary"] if r["job"] == "clickstream" and r["events_per_s"]]
    best = max(product, key=lambda r: r["events_per_s"], default=None)
    result["baseline_ratios"] = []
    if best and result["baseline"].get("events_per_s"):
        result["baseline_ratios"].append(
            {
                "what": f"product ({best['mode']}, p{best['parallelism']}) / plain-Python baseline",
                "ratio": round(best["events_per_s"] / result["baseline"]["events_per_s"], 2),
            }
        )

    _log("4/4 the collector")
    result["collector"] = _collector(args.collector_requests)
    _log(f"click → profile latency at {args.latency_rate} events/s offered")
    result["latency"] = _latency(args.latency_rate, args.latency_probes)
    result["seconds"] = round(time.monotonic() - started, 1)

    path = write_result("make-bench", result, RESULTS_DIR)
    result["result_file"] = str(path.relative_to(PROJECT_ROOT))
    chart = RESULTS_DIR / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.png"
    _chart(flink["summary"], result["baseline"], result["collector"], chart)
    text = _markdown(result, chart)
    print("\n" + text)
    if not args.no_write:
        _write_section(text)
        _log(f"BENCHMARKS.md updated; chart {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
