"""Load generator for the collector: N requests at concurrency C against a collector on loopback.

Measures what a client sees: accepted events per second, and the accept latency (request sent → answer read;
a 200 means every event of the request was acknowledged by the broker with ``acks=all``). Results go to
``bench/results/collector-<time>.json`` with the git SHA and the configuration, and a summary is printed.

    make up
    .venv/bin/python bench/collector_load.py --requests 20000 --concurrency 32 --batch 1
    .venv/bin/python bench/collector_load.py --requests 2000 --concurrency 16 --batch 50

Bounded on purpose: a fixed number of requests, a time cap (``--max-seconds``), and loopback targets only.
Every event is derived from its number and ``--seed`` (person, product, price), so two runs send the same
traffic; message ids carry a run tag, so runs do not deduplicate each other. The events land on the
sandbox's ``clickstream.events`` like any others.

The client is a minimal HTTP/1.1 keep-alive client on asyncio streams, one connection per worker, so that it
costs little CPU next to the server on the same machine.

On a shared machine events/s move with the neighbours' load; ``--server-pid`` (the collector's pid, read from
``/proc``) adds the collector's CPU time per 1,000 accepted events, which moves much less. ``--label`` names
the run (``before``, ``after``) in the result and its file name, for side-by-side comparisons.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

from flinkbench.results import RESULTS_DIR, git_sha

__all__ = ["LoadConfig", "LoadResult", "main", "run"]

DEFAULT_URL = f"http://127.0.0.1:{os.environ.get('COLLECTOR_PORT', '8080')}"
DEFAULT_HTTP_TIMEOUT_S = 30.0
_PRODUCTS = [("sku-boots", 89.0), ("sku-socks", 12.5), ("sku-cap", 19.0), ("sku-pack", 54.0), ("sku-tent", 249.0)]
_EVENTS = ["Product Viewed", "Product Added", "Product Added", "Product Removed", "Cart Viewed", "Order Completed"]


@dataclass(frozen=True)
class LoadConfig:
    url: str = DEFAULT_URL
    requests: int = 20_000
    concurrency: int = 32
    batch: int = 1
    warmup: int = 500
    people: int = 5_000
    seed: int = 42
    write_key: str = "demo-write-key"
    max_seconds: float = 300.0
    http_timeout_s: float = DEFAULT_HTTP_TIMEOUT_S
    server_pid: int | None = None


@dataclass
class LoadResult:
    config: LoadConfig
    git_sha: str
    label: str
    started_at: str
    machine: dict[str, object]
    duration_s: float = 0.0
    requests_done: int = 0
    events_accepted: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    warmup_statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    requests_per_s: float = 0.0
    events_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    server_cpu_s: float | None = None
    server_cpu_ms_per_1000_events: float | None = None


def event(config: LoadConfig, run_tag: str, number: int, now_iso: str) -> dict[str, object]:
    """Event ``number``: every field derives from it and the seed."""
    rng = random.Random(config.seed * 1_000_003 + number)
    person = rng.randrange(config.people)
    product_id, price = _PRODUCTS[rng.randrange(len(_PRODUCTS))]
    name = _EVENTS[rng.randrange(len(_EVENTS))]
    properties: dict[str, object] = {
        "product_id": product_id,
        "price": price,
        "currency": "USD",
        "cart_id": f"c{person}",
    }
    if name == "Product Added":
        properties["quantity"] = 1 + rng.randrange(3)
    elif name == "Cart Viewed":
        properties = {"cart_id": f"c{person}", "products": [{"product_id": product_id, "price": price, "quantity": 1}]}
    elif name == "Order Completed":
        properties = {"order_id": f"o{number}", "total": price, "currency": "USD"}
    return {
        "type": "track",
        "event": name,
        "userId": f"bench-user-{person}",
        "messageId": f"bench-{run_tag}-{number}",
        "timestamp": now_iso,
        "sentAt": now_iso,
        "context": {"library": {"name": "cartpulse-bench", "version": "1"}, "userAgent": "bench"},
        "properties": properties,
    }


def _bodies(config: LoadConfig, run_tag: str) -> list[bytes]:
    now_iso = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    bodies = []
    for request in range(config.warmup + config.requests):
        events = [event(config, run_tag, request * config.batch + i, now_iso) for i in range(config.batch)]
        doc: object = events[0] if config.batch == 1 else {"batch": events, "sentAt": now_iso}
        bodies.append(json.dumps(doc, separators=(",", ":")).encode())
    return bodies


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes) -> int:
    writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed by the server")
    status = int(status_line.split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return status


class _Tally(TypedDict):
    """What the workers of one phase count: latencies of measured requests, answers by status, errors by type."""

    latencies: list[float]
    statuses: Counter[str]
    errors: Counter[str]


async def _worker(config: LoadConfig, bodies: list[bytes], cursor: list[int], deadline: float, out: _Tally) -> None:
    parts = urlsplit(config.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = "/v1/track" if config.batch == 1 else "/v1/batch"
    token = base64.b64encode(f"{config.write_key}:".encode()).decode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Basic {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    latencies = out["latencies"]
    statuses = out["statuses"]
    errors = out["errors"]
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while cursor[0] < len(bodies) and time.monotonic() < deadline:
        index = cursor[0]
        cursor[0] += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(config.http_timeout_s):
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                status = await _request(*connection, head, bodies[index])
        except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] += 1
            if connection is not None:
                connection[1].close()
            connection = None
            continue
        if index >= config.warmup:
            latencies.append(time.perf_counter() - started)
            statuses[str(status)] += 1
    if connection is not None:
        connection[1].close()


def _process_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) the process has used so far, from ``/proc``; ``None`` without a pid."""
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(config: LoadConfig, bodies: list[bytes]) -> tuple[float, float | None, _Tally, _Tally]:
    """Send the warm-up requests, then the measured ones; each request once, whichever worker takes it.

    Returns the measured part's duration, the server's CPU seconds in it (with ``server_pid``), and the tallies.
    """
    out: _Tally = {"latencies": [], "statuses": Counter(), "errors": Counter()}
    warm_out: _Tally = {"latencies": [], "statuses": Counter(), "errors": out["errors"]}
    warm, rest = bodies[: config.warmup], bodies[config.warmup :]
    measured = LoadConfig(**{**asdict(config), "warmup": 0})
    if warm:
        warm_deadline = time.monotonic() + 60
        warm_cursor = [0]
        await asyncio.gather(
            *(_worker(measured, warm, warm_cursor, warm_deadline, warm_out) for _ in range(config.concurrency))
        )
    cursor = [0]
    cpu_before = _process_cpu_s(config.server_pid)
    started = time.perf_counter()
    deadline = time.monotonic() + config.max_seconds
    await asyncio.gather(*(_worker(measured, rest, cursor, deadline, out) for _ in range(config.concurrency)))
    duration = time.perf_counter() - started
    cpu_after = _process_cpu_s(config.server_pid)
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return duration, server_cpu, out, warm_out


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[rank]


def _require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"{url}: the load generator only targets loopback (127.0.0.0/8, ::1, localhost)")


def run(config: LoadConfig, label: str = "") -> LoadResult:
    _require_loopback(config.url)
    run_tag = uuid.uuid4().hex[:8]
    bodies = _bodies(config, run_tag)
    result = LoadResult(
        config=config,
        git_sha=git_sha(),
        label=label,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        },
    )
    duration, server_cpu, out, warm_out = asyncio.run(_drive(config, bodies))
    latencies = sorted(out["latencies"])
    statuses = out["statuses"]
    result.machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result.duration_s = round(duration, 3)
    result.requests_done = len(latencies)
    result.statuses = dict(statuses)
    result.warmup_statuses = dict(warm_out["statuses"])
    result.errors = dict(out["errors"])
    result.events_accepted = statuses.get("200", 0) * config.batch
    result.requests_per_s = round(result.requests_done / duration, 1) if duration else 0.0
    result.events_per_s = round(result.events_accepted / duration, 1) if duration else 0.0
    if server_cpu is not None:
        result.server_cpu_s = round(server_cpu, 2)
        if result.events_accepted:
            result.server_cpu_ms_per_1000_events = round(server_cpu * 1e6 / result.events_accepted, 1)
    result.latency_ms = {
        "p50": round(_percentile(latencies, 0.50) * 1000, 2),
        "p90": round(_percentile(latencies, 0.90) * 1000, 2),
        "p99": round(_percentile(latencies, 0.99) * 1000, 2),
        "max": round((latencies[-1] if latencies else 0.0) * 1000, 2),
        "mean": round(statistics.fmean(latencies) * 1000, 2) if latencies else 0.0,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = LoadConfig()
    parser.add_argument("--url", default=defaults.url, help="collector base URL (loopback only)")
    parser.add_argument("--requests", type=int, default=defaults.requests, help="measured requests")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="connections in parallel")
    parser.add_argument("--batch", type=int, default=defaults.batch, help="events per request (1: /v1/track)")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="requests sent first, not measured")
    parser.add_argument("--people", type=int, default=defaults.people, help="distinct userIds")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--write-key", default=defaults.write_key)
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds, help="stop measuring after this")
    parser.add_argument(
        "--server-pid", type=int, help="the collector's pid (same machine): its CPU time per 1,000 events is reported"
    )
    parser.add_argument(
        "--label", default="", help="what is measured (e.g. before, after); kept in the result and its file name"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for the JSON result")
    args = parser.parse_args(argv)
    config = LoadConfig(
        url=args.url,
        requests=args.requests,
        concurrency=args.concurrency,
        batch=args.batch,
        warmup=args.warmup,
        people=args.people,
        seed=args.seed,
        write_key=args.write_key,
        max_seconds=args.max_seconds,
        server_pid=args.server_pid,
    )
    if min(config.requests, config.concurrency, config.batch) < 1:
        parser.error("--requests, --concurrency and --batch must be at least 1")
    result = run(config, args.label)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = f"-{args.label}" if args.label else ""
    path = args.out / f"collector-{stamp}-b{config.batch}-c{config.concurrency}{suffix}.json"
    path.write_text(json.dumps(asdict(result), indent=2) + "\n")
    lat = result.latency_ms
    cpu = result.server_cpu_ms_per_1000_events
    print(
        f"{result.requests_done} requests x {config.batch} events at concurrency {config.concurrency} "
        f"in {result.duration_s:.1f} s: {result.events_per_s:,.0f} accepted events/s "
        f"({result.requests_per_s:,.0f} requests/s); accept latency p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
        f"max {lat['max']} ms; statuses {result.statuses}; errors {result.errors or 'none'}; "
        + (f"collector CPU {cpu} ms per 1,000 events; " if cpu is not None else "")
        + f"load average {result.machine['load_average_after']}\nresult: {path}"
    )
    return 0 if set(result.statuses) <= {"200"} and not result.errors else 1


if __name__ == "__main__":
    sys.exit(main())
