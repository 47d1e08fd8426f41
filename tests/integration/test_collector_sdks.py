"""Segment's and RudderStack's own Python SDKs, unchanged, with their host pointed at the collector."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.collector import collector_url
from sandbox.settings import SandboxSettings
from tests.support.collector import WRITE_KEY, CollectorClient, read_records
from tests.support.collector import own_collector as start_collector

pytestmark = pytest.mark.integration

EVENTS = "clickstream.events"


def _calls(client, run_id: str) -> None:
    user = f"sdk-{run_id}"
    client.identify(user, {"email": f"{user}@example.com"}, anonymous_id=f"anon-{run_id}")
    client.page(user, name="Home", properties={"url": "https://shop.example/"})
    client.track(
        user,
        "Product Added",
        {"product_id": "p1", "price": 19.5, "quantity": 2, "cart_id": f"cart-{run_id}", "currency": "USD"},
        timestamp=datetime.now(UTC),
    )
    client.track(user, "Order Completed", {"order_id": f"o-{run_id}", "total": 39.0, "currency": "USD"})
    client.flush()


def _check(sandbox, run_id: str, library: str, errors: list[object]) -> None:
    assert errors == []
    records = read_records(sandbox.kafka_bootstrap, EVENTS, lambda v: f"sdk-{run_id}" == v.get("userId"), expect=4)
    assert [r.value["type"] for r in records] == ["identify", "page", "track", "track"]
    assert {r.key for r in records} == {f"sdk-{run_id}"}
    assert all(r.value["context"]["library"]["name"] == library for r in records)
    assert all("receivedAt" in r.value and "originalTimestamp" in r.value for r in records)
    assert json.loads(json.dumps(records[2].value["properties"]))["price"] == 19.5


def test_segments_analytics_python(sandbox, run_id):
    from segment.analytics import Client

    errors: list[object] = []
    client = Client(
        write_key=WRITE_KEY,
        host=collector_url(sandbox),
        sync_mode=True,
        on_error=lambda error, batch: errors.append(error),
    )
    _calls(client, run_id)  # sync mode posts in the calling thread; there is no consumer thread to shut down

    _check(sandbox, run_id, "analytics-python", errors)


def test_rudderstacks_python_sdk_which_gzips(sandbox, run_id):
    from rudderstack.analytics.client import Client

    errors: list[object] = []
    client = Client(
        write_key=WRITE_KEY,
        host=collector_url(sandbox),
        sync_mode=True,
        gzip=True,
        on_error=lambda error, batch: errors.append(error),
    )
    _calls(client, run_id)  # sync mode posts in the calling thread; there is no consumer thread to shut down

    _check(sandbox, run_id, "analytics-python", errors)


@pytest.fixture
def own_collector(sandbox: SandboxSettings, tmp_path: Path) -> Iterator[CollectorClient]:
    """A collector running the code under test, on the sandbox's Kafka and Redis.

    The sandbox's collector runs the code ``make up`` started it with; this one is started from the working tree,
    on a free port, without watermark heartbeats (it shares the events topic with the sandbox's).
    """
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": sandbox.kafka_bootstrap,
        "REDIS_URL": sandbox.redis_url,
        "COLLECTOR_HEARTBEAT_INTERVAL": "0",
    }
    with start_collector("collector-sdk-ecommerce", sandbox.host, tmp_path, env) as client:
        yield client


def test_segments_sdk_cart_and_order_calls_without_an_order_id_all_reach_kafka(sandbox, own_collector, run_id):
    """Segment accepts an Order Completed without order_id and its SDK would not resend a refused one: so must we."""
    from segment.analytics import Client

    user = f"sdk-ec-{run_id}"
    line = {"product_id": "p1", "price": 19.5, "quantity": 2, "cart_id": f"cart-{run_id}"}
    names = ["Product Added", "Product Removed", "Cart Viewed", "Order Completed"]
    errors: list[object] = []
    client = Client(
        write_key=WRITE_KEY,
        host=own_collector.url,
        sync_mode=True,
        on_error=lambda error, batch: errors.append(error),
    )
    for name in names:
        client.track(user, name, line)
    client.flush()

    assert errors == []
    records = read_records(sandbox.kafka_bootstrap, EVENTS, lambda v: user == v.get("userId"), expect=len(names))
    assert [r.value["event"] for r in records] == names
    assert all(r.value["properties"] == line and r.key == user for r in records)
    marks = {r.value["event"]: r.value["context"].get("cartpulse", {}).get("spec_deviations") for r in records}
    assert marks == {
        "Product Added": None,
        "Product Removed": None,
        "Cart Viewed": None,
        "Order Completed": [{"field": "properties.order_id", "reason": "missing"}],
    }
    sample = 'cartpulse_collector_ecommerce_deviations_total{event="Order Completed",field="properties.order_id",'
    assert own_collector.metric(sample + 'reason="missing"}') == 1
