"""The A/B and holdout report: did the emails change what people bought?

Each person is counted in the group of their first delivery decision in the window: ``holdout`` (no
email, by design), or their variant. A person converts when an ``Order Completed`` of theirs comes after
that first decision and within the attribution window. Uplift is each variant's conversion rate over the
holdout's. Plain counting, shown as a page with bars; no statistics beyond a normal-approximation 95%
interval on each rate, which is enough to see whether a difference could be noise.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GroupResult", "compute", "render_html"]


@dataclass(frozen=True)
class GroupResult:
    group: str
    people: int
    emailed: int
    converted: int

    @property
    def rate(self) -> float:
        return self.converted / self.people if self.people else 0.0

    @property
    def margin(self) -> float:
        """Half-width of a 95% interval on the rate (normal approximation)."""
        return 1.96 * math.sqrt(self.rate * (1 - self.rate) / self.people) if self.people else 0.0


def compute(
    deliveries: Iterable[Mapping[str, Any]], orders: Iterable[tuple[str, int]], attribution_ms: int
) -> list[GroupResult]:
    """:param orders: ``(person_id, event time ms)`` of each Order Completed."""
    first: dict[str, tuple[int, str]] = {}
    emailed: set[str] = set()
    for record in deliveries:
        if record.get("status") == "suppressed" and record.get("reason") != "holdout":
            continue  # not part of the experiment: no consent, stale, already bought...
        group = "holdout" if record.get("holdout") else str(record.get("variant") or "unassigned")
        person, at = str(record["person_id"]), int(record["decided_at_ms"])
        if person not in first or at < first[person][0]:
            first[person] = (at, group)
        if record.get("status") == "sent":
            emailed.add(person)
    converted: set[str] = set()
    for person, t in orders:
        start = first.get(person)
        if start and start[0] <= t <= start[0] + attribution_ms:
            converted.add(person)
    groups: dict[str, list[str]] = {}
    for person, (_, group) in first.items():
        groups.setdefault(group, []).append(person)
    return [
        GroupResult(name, len(people), len(emailed & set(people)), len(converted & set(people)))
        for name, people in sorted(groups.items(), key=lambda item: (item[0] != "holdout", item[0]))
    ]


def render_html(results: list[GroupResult], title: str = "Email A/B and holdout report") -> str:
    holdout = next((r for r in results if r.group == "holdout"), None)
    top = max((r.rate + r.margin for r in results), default=0.0) or 1.0
    rows, bars = [], []
    for n, r in enumerate(results):
        uplift = "" if holdout is None or r is holdout or not holdout.rate else f"{(r.rate / holdout.rate - 1):+.1%}"
        rows.append(
            f"<tr><td>{html.escape(r.group)}</td><td>{r.people}</td><td>{r.emailed}</td><td>{r.converted}</td>"
            f"<td>{r.rate:.1%} ± {r.margin:.1%}</td><td>{uplift}</td></tr>"
        )
        width, y = 420 * r.rate / top, 10 + n * 34
        low, high = 420 * max(0.0, r.rate - r.margin) / top, 420 * (r.rate + r.margin) / top
        colour = "#9ca3af" if r.group == "holdout" else "#2563eb"
        bars.append(
            f'<text x="0" y="{y + 16}" font-size="13">{html.escape(r.group)}</text>'
            f'<rect x="90" y="{y}" width="{width:.1f}" height="22" fill="{colour}"/>'
            f'<line x1="{90 + low:.1f}" x2="{90 + high:.1f}" y1="{y + 11}" y2="{y + 11}" stroke="#111"/>'
            f'<text x="{96 + max(width, high):.1f}" y="{y + 16}" font-size="12">{r.rate:.1%}</text>'
        )
    height = 20 + 34 * len(results)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;color:#111}}
table{{border-collapse:collapse;width:100%}}
td,th{{padding:.35rem .6rem;border-bottom:1px solid #e5e7eb;text-align:right}}
td:first-child,th:first-child{{text-align:left}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Conversion: an Order Completed after the person's first delivery decision, within the attribution window.
The holdout group gets no email; uplift is each group's rate over the holdout's. Bars show the rate and its
95% interval.</p>
<svg width="620" height="{height}" role="img" aria-label="conversion rate by group">{"".join(bars)}</svg>
<table><tr><th>group</th><th>people</th><th>emailed</th><th>converted</th><th>conversion</th><th>uplift</th></tr>
{"".join(rows)}</table></body></html>
"""
