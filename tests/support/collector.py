"""Talking to a running collector, and reading what it wrote, with keys and partitions, from the real broker."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from kafka import KafkaConsumer, TopicPartition

from sandbox.process import ManagedProcess
from sandbox.settings import PROJECT_ROOT

__all__ = [
    "HTTP_TIMEOUT_S",
    "RECENT_S",
    "WRITE_KEY",
    "CollectorClient",
    "Record",
    "free_port",
    "own_collector",
    "read_records",
]

WRITE_KEY = "demo-write-key"
HTTP_TIMEOUT_S = 30.0
#: How far back reads start: a test reads what it just produced, and a topic may hold millions of older records
#: (``make bench-collector`` writes to the sandbox's clickstream.events).
RECENT_S = 120.0


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: str | None
    value: dict[str, Any]


class CollectorClient:
    """Posts Segment calls the way a server SDK does (write key as the Basic user)."""

    def __init__(self, url: str, write_key: str = WRITE_KEY) -> None:
        self.url = url.rstrip("/")
        self.write_key = write_key
        self.session = requests.Session()

    def post(
        self,
        call: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        write_key: str | None = "",
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        key = self.write_key if write_key == "" else write_key
        data = raw if raw is not None else json.dumps(body).encode()
        return self.session.post(
            f"{self.url}/v1/{call}",
            data=data,
            auth=(key, "") if key is not None else None,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=HTTP_TIMEOUT_S,
        )

    def get(self, path: str) -> requests.Response:
        return self.session.get(f"{self.url}{path}", timeout=HTTP_TIMEOUT_S)

    def metric(self, name: str) -> float:
        """The value of one sample line of /metrics, e.g. ``cartpulse_collector_events_deduplicated_total``."""
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def close(self) -> None:
        self.session.close()


def read_records(
    bootstrap: str,
    topic: str,
    keep: Callable[[dict[str, Any]], bool],
    *,
    expect: int | None = None,
    timeout_s: float = 30.0,
) -> list[Record]:
    """Every record of ``topic`` from the last :data:`RECENT_S` seconds whose JSON value passes ``keep``, in
    partition and offset order.

    With ``expect``, polls until at least that many are found (records written by a beacon arrive a little
    after the page is gone); otherwise reads once to the current end of the topic.
    """
    deadline = time.monotonic() + timeout_s
    since_ms = int((time.time() - RECENT_S) * 1000)
    while True:
        found = [record for record in _read_to_end(bootstrap, topic, timeout_s, since_ms) if keep(record.value)]
        if expect is None or len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _read_to_end(bootstrap: str, topic: str, timeout_s: float, since_ms: int) -> list[Record]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=30_000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        end = consumer.end_offsets(partitions)
        starts = consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        for tp in partitions:
            start = starts.get(tp)
            consumer.seek(tp, start.offset if start is not None else end[tp])
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end offsets within {timeout_s} s")
            for batch in consumer.poll(timeout_ms=500).values():
                for message in batch:
                    key = message.key.decode() if message.key is not None else None
                    records.append(Record(message.partition, message.offset, key, json.loads(message.value)))
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it), for a service a test starts itself."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def own_collector(
    name: str, host: str, home: Path, env: Mapping[str, str], *, wait_for_kafka: bool = True
) -> Iterator[CollectorClient]:
    """A collector process of a test's own, from the working tree, on a free port; stopped afterwards.

    :param home: where its pid file (``run/``) and log (``logs/<name>.log``) go.
    :param env: its settings (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``, ``COLLECTOR_*``) over the environment.
    :param wait_for_kafka: ready only once ``/health`` says the broker is connected (a test that stops the broker
        on purpose takes a collector that answers at all).
    """
    port = free_port()
    client = CollectorClient(f"http://{host}:{port}")

    def ready() -> bool:
        try:
            health = client.get("/health")
        except requests.RequestException:
            return False
        return health.status_code == 200 and (not wait_for_kafka or health.json().get("kafka") == "connected")

    process = ManagedProcess(
        name=name,
        argv=[sys.executable, "-m", "collector"],
        run_dir=home / "run",
        logs_dir=home / "logs",
        host=host,
        port=port,
        ready=ready,
        start_timeout_s=60.0,
        env={"COLLECTOR_HOST": host, "COLLECTOR_PORT": str(port), **env},
        cwd=PROJECT_ROOT,
    )
    process.start()
    try:
        yield client
    finally:
        client.close()
        process.stop()
