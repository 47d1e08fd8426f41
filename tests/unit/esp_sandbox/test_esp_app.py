"""The HTTP wiring through Starlette's TestClient: routes, faults in their place, control API, pages, health."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from esp_sandbox.app import create_app
from esp_sandbox.config import load_settings
from esp_sandbox.store import MessageStore
from esp_sandbox.webhook import sign
from tests.support.esp import mailchimp_body, sendgrid_body, webhook_body

SG = {"Authorization": "Bearer SG.sandbox-key"}


@pytest.fixture
def store(tmp_path) -> MessageStore:
    return MessageStore(tmp_path / "messages.jsonl")


@pytest.fixture
def client(store) -> Iterator[TestClient]:
    app = create_app(load_settings(delivered_after_ms=0), store=store)
    with TestClient(app, base_url="http://127.0.0.1:8025") as test_client:
        yield test_client


def _faults(client: TestClient, provider: str, *responses: dict) -> None:
    answer = client.post("/_sandbox/faults", json={"provider": provider, "responses": list(responses)})
    assert answer.status_code == 200, answer.text


def test_sendgrid_send_then_lookup_by_trigger(client, store):
    answer = client.post("/v3/mail/send", json=sendgrid_body("t1"), headers=SG)

    assert answer.status_code == 202 and answer.content == b"" and answer.headers["x-message-id"]
    query = {"query": "unique_args['trigger_id']=\"t1\"", "limit": "10"}
    [row] = client.get("/v3/messages", params=query, headers=SG).json()["messages"]
    assert row["msg_id"].startswith(answer.headers["x-message-id"]) and row["status"] == "delivered"
    assert client.get("/v3/messages", params=query).status_code == 401
    assert len(store) == 1


def test_a_429_and_a_500_keep_nothing_then_a_slow_202_keeps_the_message(client, store):
    _faults(client, "sendgrid", {"status": 429, "retry_after": 2}, {"status": 500}, {"status": 202, "delay_ms": 300})

    limited = client.post("/v3/mail/send", json=sendgrid_body("t1"), headers=SG)
    failed = client.post("/v3/mail/send", json=sendgrid_body("t1"), headers=SG)
    started = time.monotonic()
    slow = client.post("/v3/mail/send", json=sendgrid_body("t1"), headers=SG)

    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert limited.json() == {"errors": [{"message": "too many requests", "field": None, "help": None}]}
    assert failed.status_code == 500
    assert slow.status_code == 202 and time.monotonic() - started >= 0.3
    assert len(store) == 1
    assert client.post("/v3/mail/send", json=sendgrid_body("t1"), headers=SG).status_code == 202


def test_faults_wait_for_an_authenticated_request(client, store):
    _faults(client, "sendgrid", {"status": 500})

    assert client.post("/v3/mail/send", json=sendgrid_body("t1")).status_code == 401
    assert client.post("/v3/mail/send", json=sendgrid_body("t1"), headers=SG).status_code == 500


def test_an_accepted_fault_keeps_the_message_but_answers_the_error(client, store):
    _faults(client, "mailchimp", {"status": 500, "accepted": True})

    answer = client.post("/api/1.0/messages/send.json", json=mailchimp_body("t9"))

    assert answer.status_code == 500 and answer.json()["name"] == "ServiceUnavailable"
    [kept] = store.select()
    assert kept.trigger_id == "t9"
    found = client.post("/api/1.0/messages/search", json={"key": "md-sandbox-key", "query": "u_trigger_id:t9"})
    assert [row["_id"] for row in found.json()] == [kept.provider_message_id]


def test_mailchimp_send_with_and_without_the_json_suffix(client):
    for path in ("/api/1.0/messages/send", "/api/1.0/messages/send.json"):
        answer = client.post(path, json=mailchimp_body("t1"))
        assert answer.status_code == 200 and answer.json()[0]["status"] == "sent"
    wrong = client.post("/api/1.0/messages/send", json=mailchimp_body("t1", key="nope"))
    assert wrong.status_code == 500 and wrong.json()["name"] == "Invalid_Key"
    garbage = client.post("/api/1.0/messages/send", content=b"key=md-sandbox-key")
    assert garbage.status_code == 500 and garbage.json()["message"] == "You must specify a key value"


def test_the_webhook_end_to_end_with_a_replay(client, store):
    raw = json.dumps(webhook_body("t1")).encode()
    headers = {"X-Cartpulse-Signature": sign("sandbox-webhook-secret", raw), "Idempotency-Key": "k1"}

    first = client.post("/webhook/email", content=raw, headers=headers)
    again = client.post("/webhook/email", content=raw, headers=headers)

    assert first.status_code == again.status_code == 202 and first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert len(store) == 1


def test_an_oversize_webhook_body_is_413(client):
    raw = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'

    answer = client.post("/webhook/email", content=raw, headers={"X-Cartpulse-Signature": sign("s", raw)})

    assert answer.status_code == 413 and answer.json()["error"] == "too_large"


def test_the_control_api(client, store):
    client.post("/v3/mail/send", json=sendgrid_body("t1"), headers=SG)
    client.post("/api/1.0/messages/send", json=mailchimp_body("t2"))

    assert [m["trigger_id"] for m in client.get("/_sandbox/messages").json()] == ["t1", "t2"]
    assert [m["provider"] for m in client.get("/_sandbox/messages", params={"trigger_id": "t2"}).json()] == [
        "mailchimp"
    ]
    assert len(client.get("/_sandbox/messages", params={"provider": "sendgrid"}).json()) == 1
    assert len(client.get("/_sandbox/messages", params={"to": "ANN@example.com"}).json()) == 2
    assert client.get("/_sandbox/messages", params={"provider": "ses"}).status_code == 400
    one = client.get("/_sandbox/messages").json()[0]
    assert client.get(f"/_sandbox/messages/{one['id']}").json() == one
    assert client.get("/_sandbox/messages/nope").status_code == 404

    bad = client.post("/_sandbox/faults", json={"provider": "sendgrid", "responses": [{"status": "x"}]})
    assert bad.status_code == 400 and bad.json()["field"] == "responses.0.status"
    _faults(client, "smtp", {"status": 451})
    assert client.get("/_sandbox/faults").json()["smtp"] == [{"status": 451}]
    assert client.delete("/_sandbox/faults", params={"provider": "smtp"}).json() == {"cleared": 1}
    assert client.delete("/_sandbox/faults").json() == {"cleared": 0}

    assert client.delete("/_sandbox/messages").json() == {"deleted": 2}
    assert client.get("/_sandbox/messages").json() == [] and len(store) == 0


def test_reset_also_forgets_idempotency_keys(client):
    raw = json.dumps(webhook_body("t1")).encode()
    headers = {"X-Cartpulse-Signature": sign("sandbox-webhook-secret", raw), "Idempotency-Key": "k1"}
    client.post("/webhook/email", content=raw, headers=headers)
    client.delete("/_sandbox/messages")

    answer = client.post("/webhook/email", content=raw, headers=headers)

    assert answer.status_code == 202 and "idempotent-replayed" not in answer.headers


def test_the_outbox_pages_escape_everything_and_allow_no_scripts(client):
    body = sendgrid_body("t<1>", subject="Hi <b>Ann</b> & co")
    body["content"][1]["value"] = '<p onclick="x()">Hello "Ann"</p><script>alert(1)</script>'
    client.post("/v3/mail/send", json=body, headers=SG)

    page = client.get("/outbox")
    assert page.status_code == 200 and "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "Hi &lt;b&gt;Ann&lt;/b&gt; &amp; co" in page.text and "<b>Ann</b>" not in page.text
    assert "t&lt;1&gt;" in page.text
    [message_id] = [m["id"] for m in client.get("/_sandbox/messages").json()]
    assert f'href="/outbox/{message_id}"' in page.text

    detail = client.get(f"/outbox/{message_id}")
    assert '<iframe sandbox=""' in detail.text
    assert 'srcdoc="&lt;p onclick=&#34;x()&#34;&gt;Hello &#34;Ann&#34;&lt;/p&gt;&lt;script&gt;' in detail.text
    assert "<script>" not in detail.text
    assert "<pre>Your cart is waiting.</pre>" in detail.text
    assert client.get("/outbox/unknown").status_code == 404
    assert client.get("/", follow_redirects=False).headers["location"] == "/outbox"
    assert "1 message from sendgrid" in client.get("/outbox", params={"provider": "sendgrid"}).text


def test_health_and_metrics(client):
    client.post("/v3/mail/send", json=sendgrid_body("t1"), headers=SG)

    assert client.get("/health").json() == {"status": "ok", "messages": 1, "smtp": None}
    metrics = client.get("/metrics").text
    assert 'cartpulse_esp_sandbox_messages_kept_total{provider="sendgrid"} 1.0' in metrics
    assert 'cartpulse_esp_sandbox_answers_total{endpoint="sendgrid",status="202"} 1.0' in metrics


def test_a_restarted_app_has_the_kept_messages(tmp_path):
    settings = load_settings(store_path=tmp_path / "m.jsonl")
    with TestClient(create_app(settings)) as first:
        first.post("/v3/mail/send", json=sendgrid_body("t1"), headers=SG)

    with TestClient(create_app(settings)) as second:
        assert [m["trigger_id"] for m in second.get("/_sandbox/messages").json()] == ["t1"]
