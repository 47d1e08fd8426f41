"""The HTTP wiring: routes, limits, gzip, CORS, health, metrics and the static files (backends are twins)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from collector.app import create_app
from collector.clients.memory import MemoryProducer, MemoryStore
from collector.config import load_settings
from tests.support.events import BEGINNING, iso

AUTH = ("demo-write-key", "")
TRACK = {"userId": "ann", "event": "Signed Up", "messageId": "m1", "timestamp": iso(BEGINNING)}


class App:
    def __init__(self) -> None:
        self.producer = MemoryProducer()
        self.store = MemoryStore(clock=lambda: BEGINNING)
        settings = load_settings(write_keys="demo-write-key", cors_origins="https://shop.example")
        self.app = create_app(settings, producer=self.producer, store=self.store, clock=lambda: BEGINNING)


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(app.app, base_url="http://127.0.0.1:8080") as test_client:
        yield test_client


def test_a_server_sdk_call_with_basic_auth(client, app):
    answer = client.post("/v1/track", json=TRACK, auth=AUTH)

    assert answer.status_code == 200 and answer.json() == {"success": True}
    assert json.loads(app.producer.records[0].value)["receivedAt"] == iso(BEGINNING)


def test_a_browser_batch_as_text_plain_with_the_key_in_the_body(client, app):
    body = {"batch": [{**TRACK, "type": "track"}], "writeKey": "demo-write-key", "sentAt": iso(BEGINNING)}

    answer = client.post("/v1/b", content=json.dumps(body), headers={"Content-Type": "text/plain"})

    assert answer.status_code == 200 and len(app.producer.records) == 1


def test_gzipped_bodies_are_accepted(client, app):
    body = gzip.compress(json.dumps({"batch": [{**TRACK, "type": "track"}]}).encode())

    answer = client.post("/v1/batch", content=body, auth=AUTH, headers={"Content-Encoding": "gzip"})

    assert answer.status_code == 200 and len(app.producer.records) == 1


def test_bodies_over_the_limit_get_413(client):
    single = client.post("/v1/track", content=b'{"x": "' + b"y" * 40_000 + b'"}', auth=AUTH)
    batch = client.post("/v1/batch", content=b'{"batch": "' + b"y" * 600_000 + b'"}', auth=AUTH)

    assert single.status_code == batch.status_code == 413
    assert "32768" in single.json()["message"] and "512000" in batch.json()["message"]


def test_an_unsupported_encoding_gets_415(client):
    assert client.post("/v1/track", content=b"{}", auth=AUTH, headers={"Content-Encoding": "br"}).status_code == 415


def test_kafka_down_is_a_503_with_retry_after(client, app):
    app.producer.down = True

    answer = client.post("/v1/track", json=TRACK, auth=AUTH)

    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"


def test_cors_preflight_from_the_shop_origin(client):
    answer = client.options(
        "/v1/batch",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )

    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://shop.example"


def test_unknown_calls_and_methods(client):
    unknown = client.post("/v1/purchase", json=TRACK, auth=AUTH)

    assert unknown.status_code == 404 and "/v1/track" in unknown.json()["message"]
    assert client.get("/v1/track").status_code == 405


def test_health_reports_the_backends(client, app):
    assert client.get("/health").json() == {"status": "ok", "kafka": "connected", "redis": "ok"}
    app.producer.down = True
    app.store.down = True
    assert client.get("/health").json() == {"status": "ok", "kafka": "not connected", "redis": "unreachable"}


def test_metrics_are_exposed(client):
    client.post("/v1/track", json=TRACK, auth=AUTH)
    client.post("/v1/track", json=TRACK, auth=AUTH)
    client.post("/v1/track", json={}, auth=AUTH)

    text = client.get("/metrics").text

    assert 'cartpulse_collector_events_accepted_total{type="track"} 1.0' in text
    assert "cartpulse_collector_events_deduplicated_total 1.0" in text
    assert 'cartpulse_collector_events_rejected_total{reason="missing_identity"} 1.0' in text
    assert "cartpulse_collector_produce_latency_seconds_bucket" in text


def test_the_tracker_and_the_demo_shop_are_served(client):
    script = client.get("/cartpulse.js")
    shop = client.get("/shop/")

    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "sendBeacon" in script.text
    assert shop.status_code == 200 and "/cartpulse.js" in shop.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/shop/"
