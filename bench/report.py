"""Render bench/results/*.json into one self-contained page, ``bench/results/report.html`` (inline SVG, no deps).

    .venv/bin/python bench/report.py            # then open bench/results/report.html in a browser

Numbers in a table are easy to misread; the page draws them: events/s per job × mode × option set (one bar
per configuration, a tick per repetition, so the spread is visible), and click → profile latency per case on a
log scale with every probe as a dot, its p50/p95/p99 marked and the 200 ms promise as a line. Every chart
says which git SHA, machine and command produced it. The collector's results are listed too.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from html import escape
from pathlib import Path
from typing import Any

from flinkbench.results import RESULTS_DIR

__all__ = ["latency_svg", "main", "render", "throughput_svg"]

KEEP_PER_KIND = 4  # newest result files drawn per benchmark; older ones are listed only
_COLORS = {"process": "#4c78a8", "thread": "#f58518"}
_FAILED = "#d62728"
_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 980px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 12px; } code { background: #f4f4f4; padding: 0 .25em; }
table { border-collapse: collapse; margin: .6rem 0; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
"""


def _meta(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    cfg = result.get("config", {})
    return (
        f'<p class="meta">{escape(result.get("started_at", "?"))} · git <code>{escape(result.get("git_sha", "?"))}'
        f"</code> · {m.get('nproc') or m.get('cpus')} cores · load average {m.get('load_average_before')} → "
        f"{m.get('load_average_after')} · <code>.venv/bin/python {escape(cfg.get('command', '?'))}</code></p>"
    )


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``raw``: axis labels people can read."""
    power = 10 ** math.floor(math.log10(max(raw, 1e-9)))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def throughput_svg(summary: list[dict[str, Any]]) -> str:
    """One horizontal bar per configuration (median marginal events/s), a tick per repetition."""
    rows = len(summary)
    width, left, right, bar_h, gap = 900, 330, 120, 20, 10
    top = 10
    height = top + rows * (bar_h + gap) + 30
    top_rate = max([x for r in summary for x in r.get("rates", [])] + [1.0])
    scale = (width - left - right) / top_rate
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, r in enumerate(summary):
        y = top + i * (bar_h + gap)
        label = " · ".join(r.get(k) or "" for k in ("job", "mode", "config", "variant") if r.get(k))
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        rate = r.get("events_per_s")
        if not rate:
            reason = (r.get("problems") or ["no correct pair of runs"])[0]
            parts.append(f'<text x="{left + 4}" y="{y + 15}" fill="{_FAILED}">failed: {escape(reason[:95])}</text>')
            continue
        color = _COLORS.get(r["mode"], "#888")
        parts.append(f'<rect x="{left}" y="{y}" width="{rate * scale:.1f}" height="{bar_h}" fill="{color}"/>')
        for x in r.get("rates", []):
            xp = left + x * scale
            parts.append(f'<line x1="{xp:.1f}" x2="{xp:.1f}" y1="{y - 2}" y2="{y + bar_h + 2}" stroke="#000"/>')
        parts.append(f'<text x="{left + rate * scale + 8:.1f}" y="{y + 15}">{rate:,.0f} events/s</text>')
    axis_y = top + rows * (bar_h + gap) + 5
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{axis_y}" y2="{axis_y}" stroke="#999"/>')
    step = _nice_step(top_rate / 4)
    for k in range(int(top_rate // step) + 1):
        x = left + k * step * scale
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 15}" text-anchor="middle">{k * step:,.0f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def latency_svg(summary: list[dict[str, Any]], rounds: list[dict[str, Any]], promise_ms: float) -> str:
    """Per case, every probe as a dot on a log axis (1 ms to 10 s), p50/p95/p99 ticks, the promise as a line."""
    width, left, right, row_h = 900, 170, 30, 46
    lo, hi = 0.0, 4.0  # log10(ms): 1 ms .. 10 s
    height = 20 + len(summary) * row_h + 40
    span = width - left - right

    def x_of(ms: float) -> float:
        return left + (min(max(math.log10(max(ms, 1.0)), lo), hi) - lo) / (hi - lo) * span

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    bottom = 20 + len(summary) * row_h
    for decade in range(int(lo), int(hi) + 1):
        x = x_of(10**decade)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="10" y2="{bottom}" stroke="#eee"/>')
        label = f"{10**decade:g} ms" if decade < 3 else f"{10 ** (decade - 3):g} s"
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{label}</text>')
    xp = x_of(promise_ms)
    parts.append(f'<line x1="{xp:.1f}" x2="{xp:.1f}" y1="6" y2="{bottom}" stroke="{_FAILED}" stroke-dasharray="5,4"/>')
    parts.append(f'<text x="{xp + 4:.1f}" y="{bottom + 32}" fill="{_FAILED}">promise {promise_ms:.0f} ms</text>')
    for i, r in enumerate(summary):
        y = 20 + i * row_h + row_h / 2
        mode = r["case"].split(":")[-1]
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(r["case"])}</text>')
        samples = [s for rd in rounds if rd["case"] == r["case"] for s in rd["samples_ms"]]
        if not samples:
            error = (r.get("errors") or ["no samples"])[0]
            parts.append(f'<text x="{left + 4}" y="{y + 4:.1f}" fill="{_FAILED}">failed: {escape(error[:95])}</text>')
            continue
        color = _COLORS.get(mode, "#888")
        for n, s in enumerate(samples):
            jitter = ((n * 7919) % 17 - 8) * 0.9
            parts.append(f'<circle cx="{x_of(s):.1f}" cy="{y + jitter:.1f}" r="1.6" fill="{color}" opacity=".35"/>')
        for key, dash in (("p50", ""), ("p95", "3,2"), ("p99", "1,2")):
            if r.get(key) is not None:
                x = x_of(r[key])
                parts.append(
                    f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 14:.1f}" y2="{y + 14:.1f}" stroke="#000" '
                    f'stroke-width="2" stroke-dasharray="{dash}"><title>{key} {r[key]:.1f} ms</title></line>'
                )
        parts.append(f'<text x="{x_of(r["p50"]) + 4:.1f}" y="{y - 10:.1f}">p50 {r["p50"]:,.0f} ms</text>')
    parts.append("</svg>")
    return "".join(parts)


def _rate(value: float | None) -> str:
    return f"{value:,.0f}" if value else "failed"


def _throughput_section(result: dict[str, Any]) -> str:
    cfg = result["config"]
    rows = "".join(
        f"<tr><td>{escape(r['job'])}</td><td>{escape(r['mode'])}</td><td>{escape(r['config'])}</td>"
        f"<td>{escape(r.get('variant') or 'working tree')}</td><td class='n'>{_rate(r['events_per_s'])}</td>"
        f"<td class='n'>{', '.join(f'{x:,.0f}' for x in r['rates']) or '-'}</td>"
        f"<td class='n'>{r['fixed_cost_s'] if r['fixed_cost_s'] is not None else '-'}</td>"
        f"<td>{escape('; '.join(r['problems'])[:200])}</td></tr>"
        for r in result["summary"]
    )
    ratios = "".join(
        f"<li>{escape(q['job'])}: {escape(q['what'])} = <b>{q['ratio']:.2f}×</b></li>" for q in result.get("ratios", [])
    )
    return (
        f"<h2>Throughput: marginal events/s, {cfg['small']:,} vs {cfg['large']:,} events, "
        f"median of {cfg['repeats']}</h2>{_meta(result)}{throughput_svg(result['summary'])}"
        "<table><tr><th>job</th><th>mode</th><th>options</th><th>code</th><th>events/s</th><th>per repetition</th>"
        f"<th>fixed cost, s</th><th>problems</th></tr>{rows}</table>"
        f"<ul>{ratios}</ul><p class='meta'>option sets: <code>{escape(json.dumps(cfg['configs']))}</code></p>"
    )


def _latency_section(result: dict[str, Any]) -> str:
    cfg = result["config"]

    def f(v: float | None) -> str:
        return f"{v:,.1f}" if v is not None else "-"

    rows = "".join(
        f"<tr><td>{escape(r['case'])}</td><td class='n'>{r['probes']}</td><td class='n'>{f(r['p50'])}</td>"
        f"<td class='n'>{f(r['p95'])}</td><td class='n'>{f(r['p99'])}</td><td class='n'>{f(r['max'])}</td>"
        f"<td class='n'>{(r['within_promise'] or 0) * 100:.0f} %</td>"
        f"<td>{escape('; '.join(r['errors'])[:200])}</td></tr>"
        for r in result["summary"]
    )
    return (
        f"<h2>Click → profile latency, {escape(cfg['job'])}, {cfg['probes']} probes × {cfg['rounds']} job starts "
        f"per case</h2>{_meta(result)}{latency_svg(result['summary'], result['rounds'], cfg['promise_ms'])}"
        "<table><tr><th>case</th><th>probes</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th>"
        f"<th>≤ {cfg['promise_ms']:.0f} ms</th><th>errors</th></tr>{rows}</table>"
        f"<p class='meta'>option sets: <code>{escape(json.dumps(cfg['option_sets']))}</code></p>"
    )


def _index(results: list[tuple[Path, dict[str, Any]]]) -> str:
    rows = []
    for path, r in results:
        kind = r.get("benchmark") or path.name.split("-")[0]
        if kind == "flink-throughput":
            headline = ", ".join(
                f"{s['job']}/{s['mode']}/{s['config']} {(s['events_per_s'] or 0):,.0f}" for s in r["summary"]
            )
        elif kind == "flink-latency":
            headline = ", ".join(f"{s['case']} p50 {s['p50'] or 0:,.0f} ms" for s in r["summary"])
        else:
            headline = f"{r.get('events_per_s', 0):,.0f} events/s, p50 {r.get('latency_ms', {}).get('p50', '?')} ms"
        rows.append(
            f"<tr><td>{escape(path.name)}</td><td>{escape(r.get('git_sha', '?'))}</td><td>{escape(headline)}</td></tr>"
        )
    return f"<h2>All result files</h2><table><tr><th>file</th><th>git</th><th>headline</th></tr>{''.join(rows)}</table>"


def render(results_dir: Path) -> str:
    """The page for every result file in ``results_dir``, newest first."""
    results = [(p, json.loads(p.read_text())) for p in sorted(results_dir.glob("*.json"), reverse=True)]
    flink_tp = [r for p, r in results if r.get("benchmark") == "flink-throughput"][:KEEP_PER_KIND]
    flink_lat = [r for p, r in results if r.get("benchmark") == "flink-latency"][:KEEP_PER_KIND]
    body = [
        "<h1>cartpulse benchmarks</h1>",
        "<p>Raw results: <code>bench/results/*.json</code>; how they were measured and what they mean: "
        "<code>BENCHMARKS.md</code>. Blue: process mode, orange: thread mode.</p>",
        *(_latency_section(r) for r in flink_lat),
        *(_throughput_section(r) for r in flink_tp),
        _index(results),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cartpulse benchmarks</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of result JSON files")
    parser.add_argument("--out", type=Path, default=None, help="page to write (default: <results>/report.html)")
    args = parser.parse_args(argv)
    out = args.out or args.results / "report.html"
    out.write_text(render(args.results))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
