"""Segment's and RudderStack's own Python SDKs, unchanged, with their host pointed at the collector."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sandbox.collector import collector_url
from tests.support.collector import WRITE_KEY, read_records

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
