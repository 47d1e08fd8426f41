"""The generic webhook: HMAC-SHA256 over the raw body, Idempotency-Key honoured, our documented answers."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from esp_sandbox import webhook
from esp_sandbox.wire import Incoming
from tests.support.esp import webhook_body

NOW = 1_767_225_600_000
SECRET = b"sandbox-webhook-secret"


def _incoming(body: bytes, key: str | None = "idem-1", signature: str | None = None) -> Incoming:
    headers = {"x-cartpulse-signature": signature if signature is not None else webhook.sign(SECRET, body)}
    if key is not None:
        headers["idempotency-key"] = key
    return Incoming(headers=headers, body=body, received_at_ms=NOW)


def _raw(doc) -> bytes:
    return json.dumps(doc).encode()


def test_the_signature_is_hmac_sha256_of_the_raw_body():
    raw = _raw(webhook_body("t1"))

    assert webhook.sign(SECRET, raw) == "sha256=" + hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
    assert webhook.sign(SECRET.decode(), raw) == webhook.sign(SECRET, raw)
    assert webhook.authenticate(_incoming(raw), SECRET) is None


@pytest.mark.parametrize("signature", ["", "sha256=00", "sha1=abc"])
def test_a_missing_or_wrong_signature_is_401(signature):
    raw = _raw(webhook_body("t1"))

    answer = webhook.authenticate(_incoming(raw, signature=signature), SECRET)

    assert answer is not None and answer.status == 401 and answer.json()["error"] == "invalid_signature"


def test_a_signature_over_other_bytes_does_not_match():
    raw = _raw(webhook_body("t1"))
    other = webhook.sign(SECRET, raw + b" ")

    assert webhook.authenticate(_incoming(raw, signature=other), SECRET) is not None


def test_an_accepted_call_is_kept_and_answered_202():
    ledger = webhook.IdempotencyLedger()
    body = webhook_body("t1", headers={"List-Unsubscribe": "<https://x/u>"}, metadata={"variant": "a"})

    answer, [record] = webhook.accept(_incoming(_raw(body)), ledger)

    assert answer.status == 202
    assert answer.json() == {"id": record.id, "trigger_id": "t1", "status": "accepted"}
    assert record.provider == "webhook" and record.to == ["ann@example.com"] and record.from_email == "shop@example.com"
    assert record.metadata == {"variant": "a", "trigger_id": "t1"} and record.headers["List-Unsubscribe"]
    assert record.idempotency_key == "idem-1" and record.request_id == "idem-1"


def test_a_repeat_with_the_same_key_answers_the_original_and_keeps_nothing_new():
    ledger = webhook.IdempotencyLedger()
    raw = _raw(webhook_body("t1"))
    first, _ = webhook.accept(_incoming(raw), ledger)

    again, records = webhook.accept(_incoming(raw), ledger)

    assert records == []
    assert again.status == first.status and again.body == first.body
    assert again.headers["Idempotent-Replayed"] == "true"


def test_the_same_key_for_another_body_is_422():
    ledger = webhook.IdempotencyLedger()
    webhook.accept(_incoming(_raw(webhook_body("t1"))), ledger)

    answer, records = webhook.accept(_incoming(_raw(webhook_body("t2"))), ledger)

    assert answer.status == 422 and answer.json()["error"] == "idempotency_key_reused" and records == []


def test_the_ledger_is_rebuilt_from_kept_messages_after_a_restart():
    ledger = webhook.IdempotencyLedger()
    raw = _raw(webhook_body("t1"))
    first, records = webhook.accept(_incoming(raw), ledger)

    restarted = webhook.IdempotencyLedger()
    restarted.rebuild(records)
    again, kept = webhook.accept(_incoming(raw), restarted)

    assert kept == [] and again.body == first.body


def test_a_failed_request_is_not_remembered():
    ledger = webhook.IdempotencyLedger()
    bad, _ = webhook.accept(_incoming(_raw(webhook_body("t1", to="nobody"))), ledger)
    good, records = webhook.accept(_incoming(_raw(webhook_body("t1"))), ledger)

    assert bad.status == 400 and good.status == 202 and len(records) == 1


def test_the_idempotency_key_is_required():
    answer, _ = webhook.accept(_incoming(_raw(webhook_body("t1")), key=None), webhook.IdempotencyLedger())

    assert answer.status == 400 and answer.json()["field"] == "Idempotency-Key"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("trigger_id"), "trigger_id"),
        (lambda b: b.update(trigger_id="  "), "trigger_id"),
        (lambda b: b.update(to="Ann <ann@example.com>"), "to"),
        (lambda b: b.pop("from"), "from"),
        (lambda b: b.update(subject=""), "subject"),
        (lambda b: [b.pop("html"), b.pop("text")], "html"),
        (lambda b: b.update(text=5), "text"),
        (lambda b: b.update(headers={"X-N": 1}), "headers"),
        (lambda b: b.update(metadata={"a": [1]}), "metadata"),
    ],
)
def test_a_bad_body_names_the_field(change, field):
    body = webhook_body("t1")
    change(body)

    answer, records = webhook.accept(_incoming(_raw(body)), webhook.IdempotencyLedger())

    assert answer.status == 400 and records == []
    assert answer.json()["error"] == "invalid_request" and answer.json()["field"] == field


def test_not_json_is_400_and_too_large_is_413():
    answer, _ = webhook.accept(_incoming(b"nope"), webhook.IdempotencyLedger())

    assert answer.status == 400 and answer.json()["field"] is None
    assert webhook.too_large().status == 413
