"""Kafka down: the collector answers 503 with Retry-After, and nothing it acknowledged is lost or doubled.

The test owns a broker of its own (same jars, its own ports and data) and a collector pointed at it, so it can
stop and start that broker without disturbing the sandbox. Redis is the sandbox's.

1. The broker has never been up: calls get 503 at once, the collector keeps serving.
2. The broker comes up: the client resends the same requests until they get 200.
3. The broker is stopped while the collector is connected: new calls get 503 once the produce timeout passes.
4. It comes back: resending until 200 leaves every event on the topic exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sandbox.kafka import create_topics, kafka_process
from sandbox.settings import SandboxSettings
from tests.support.broker import private_broker
from tests.support.collector import CollectorClient, own_collector, read_records

pytestmark = pytest.mark.integration

EVENTS = "clickstream.events"
RESEND_DEADLINE_S = 90.0


@pytest.fixture
def own_broker(sandbox: SandboxSettings, tmp_path: Path) -> Iterator[SandboxSettings]:
    """Settings for a broker of this test's own; started and stopped by the test, always stopped at the end."""
    with private_broker(sandbox, tmp_path / "kafka-down") as settings:
        yield settings


@pytest.fixture
def collector(sandbox: SandboxSettings, own_broker: SandboxSettings) -> Iterator[CollectorClient]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": own_broker.kafka_bootstrap,
        "REDIS_URL": sandbox.redis_url,
        "COLLECTOR_PRODUCE_TIMEOUT": "3s",
        "COLLECTOR_KAFKA_CONNECT_TIMEOUT": "2s",
        "COLLECTOR_RETRY_AFTER": "1s",
    }
    with own_collector("collector-kafka-down", sandbox.host, own_broker.home, env, wait_for_kafka=False) as client:
        yield client


def _batch(run_id: str, numbers: range) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    events = [
        {
            "type": "track",
            "event": "Product Added",
            "userId": f"kd-{run_id}-{n % 2}",
            "messageId": f"{run_id}-m{n}",
            "timestamp": now,
            "properties": {"product_id": f"p{n}", "price": 1.0 + n, "cart_id": "c"},
        }
        for n in numbers
    ]
    return {"batch": events, "sentAt": now}


def _assert_refused(answer: Any) -> None:
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.json()["success"] is False


def _resend_until_accepted(collector: CollectorClient, body: dict[str, Any]) -> list[int]:
    """What an SDK does: resend the same request, honouring Retry-After, until it is accepted."""
    statuses = []
    deadline = time.monotonic() + RESEND_DEADLINE_S
    while time.monotonic() < deadline:
        answer = collector.post("batch", body)
        statuses.append(answer.status_code)
        if answer.status_code == 200:
            return statuses
        assert answer.status_code == 503, answer.text
        time.sleep(int(answer.headers["Retry-After"]))
    raise AssertionError(f"not accepted within {RESEND_DEADLINE_S} s; answers: {statuses}")


def _on_topic(broker: SandboxSettings, run_id: str) -> list[str]:
    records = read_records(broker.kafka_bootstrap, EVENTS, lambda v: v["messageId"].startswith(f"{run_id}-"))
    return sorted(r.value["messageId"] for r in records)


def test_kafka_down_gets_503_and_every_event_lands_exactly_once(own_broker, collector, run_id):
    broker = kafka_process(own_broker)
    first, second = _batch(run_id, range(0, 4)), _batch(run_id, range(4, 8))

    # 1. never up
    _assert_refused(collector.post("batch", first))
    _assert_refused(collector.post("track", first["batch"][0]))
    assert collector.get("/health").json()["kafka"] == "not connected"

    # 2. up: the resent requests are taken
    broker.start()
    create_topics(own_broker)
    _resend_until_accepted(collector, first)
    assert _on_topic(own_broker, run_id) == sorted(e["messageId"] for e in first["batch"])

    # 3. lost while connected
    broker.stop()
    _assert_refused(collector.post("batch", second))

    # 4. back: resend until accepted; nothing lost, nothing doubled
    broker = kafka_process(own_broker)
    broker.start()
    _resend_until_accepted(collector, second)
    _resend_until_accepted(collector, first)  # a client that never saw the first 200 resends too
    expected = sorted(e["messageId"] for e in first["batch"] + second["batch"])
    assert _on_topic(own_broker, run_id) == expected
