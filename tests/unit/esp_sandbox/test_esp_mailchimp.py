"""Mailchimp Transactional (Mandrill): its key-in-body auth, its HTTP-500 errors, per-recipient answers, search."""

from __future__ import annotations

import json

import pytest

from esp_sandbox import mailchimp
from esp_sandbox.faults import Fault
from esp_sandbox.records import StoredMessage
from esp_sandbox.wire import KeySet
from tests.support.esp import mailchimp_body

NOW = 1_767_225_600_000
KEYS = KeySet([b"md-sandbox-key"])
DAY_MS = 86_400_000


def test_a_missing_key_and_an_invalid_key_are_mandrills_500s():
    missing = mailchimp.authenticate({"message": {}}, KEYS)
    not_json = mailchimp.authenticate(None, KEYS)
    wrong = mailchimp.authenticate({"key": "other"}, KEYS)

    assert missing is not None and missing.status == 500
    assert missing.json() == {
        "status": "error",
        "code": -1,
        "name": "ValidationError",
        "message": "You must specify a key value",
    }
    assert not_json is not None and not_json.json() == missing.json()
    assert wrong is not None and wrong.status == 500
    assert wrong.json() == {"status": "error", "code": -1, "name": "Invalid_Key", "message": "Invalid API key"}
    assert mailchimp.authenticate({"key": "md-sandbox-key"}, KEYS) is None


def test_a_send_answers_one_entry_per_recipient_and_keeps_one_record_each():
    body = mailchimp_body("t1")
    body["message"]["to"] = [
        {"email": "ann@example.com"},
        {"email": "bo@example.com", "type": "cc"},
        {"email": "not-an-address"},
    ]
    body["message"]["recipient_metadata"] = [{"rcpt": "bo@example.com", "values": {"variant": "b"}}]

    answer, records = mailchimp.accept(body, NOW)

    assert answer.status == 200
    entries = answer.json()
    assert [(e["email"], e["status"], e["reject_reason"]) for e in entries] == [
        ("ann@example.com", "sent", None),
        ("bo@example.com", "sent", None),
        ("not-an-address", "invalid", None),
    ]
    assert all(len(e["_id"]) == 32 for e in entries)
    ann, bo = records
    assert ann.provider_message_id == entries[0]["_id"] and ann.to == ["ann@example.com"]
    assert bo.cc == ["bo@example.com"] and bo.metadata == {"trigger_id": "t1", "variant": "b"}
    assert ann.trigger_id == "t1" and ann.variant is None


def test_a_reject_fault_rejects_every_recipient_and_keeps_them_as_rejected():
    answer, [record] = mailchimp.accept(mailchimp_body("t1"), NOW, reject_reason="hard-bounce")

    assert answer.json()[0]["status"] == "rejected" and answer.json()[0]["reject_reason"] == "hard-bounce"
    assert record.state == "rejected" and record.reject_reason == "hard-bounce"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m.pop("to"), "to"),
        (lambda m: m.update(to=[]), "to"),
        (lambda m: m.update(to=[{"name": "no email"}]), "to.0.email"),
        (lambda m: m.update(to=[{"email": "a@example.com", "type": "reply-to"}]), "to.0.type"),
        (lambda m: m.update(from_email="shop"), "from_email"),
        (lambda m: m.pop("from_email"), "from_email"),
        (lambda m: m.pop("subject"), "subject"),
        (lambda m: [m.pop("html"), m.pop("text")], "html"),
        (lambda m: m.update(metadata={"nested": {"a": 1}}), "metadata"),
        (lambda m: m.update(metadata=["trigger_id"]), "metadata"),
    ],
)
def test_a_bad_message_is_a_validation_error_naming_the_field(change, field):
    body = mailchimp_body("t1")
    change(body["message"])

    answer, records = mailchimp.accept(body, NOW)

    assert answer.status == 500 and records == []
    doc = answer.json()
    assert (doc["status"], doc["code"], doc["name"]) == ("error", -2, "ValidationError")
    assert doc["message"].startswith("Validation error: ")
    assert list(json.loads(doc["message"].removeprefix("Validation error: "))["message"]) == [field]


def test_a_message_that_is_not_an_object():
    answer, _ = mailchimp.accept({"key": "k", "message": "hi"}, NOW)

    assert answer.json()["message"] == 'Validation error: {"message":"Please enter an array"}'


def test_injected_faults_use_mandrills_envelope():
    answer = mailchimp.fault_answer(Fault(503, retry_after=3))

    assert answer.status == 503 and answer.headers == {"Retry-After": "3"}
    assert answer.json() == {
        "status": "error",
        "code": -1,
        "name": "ServiceUnavailable",
        "message": "Service Unavailable",
    }


def _kept(n: int, trigger: str, at_ms: int = NOW - 1_000, **extra) -> StoredMessage:
    return StoredMessage(
        id=f"id{n}",
        provider="mailchimp",
        received_at_ms=at_ms,
        provider_message_id=f"mid{n}",
        from_email=extra.pop("from_email", "shop@example.com"),
        to=[f"r{n}@example.com"],
        subject=extra.pop("subject", "Your cart is waiting"),
        metadata={"trigger_id": trigger},
        **extra,
    )


KEPT = [
    _kept(1, "t-1", tags=["cart"]),
    _kept(2, "t-2", subject="Price drop on shoes", from_email="deals@example.com"),
    _kept(3, "t-1", at_ms=NOW - 8 * DAY_MS),
]


def _search(**doc) -> list[str]:
    answer = mailchimp.search({"key": "k", **doc}, lambda: KEPT, NOW)
    assert answer.status == 200, answer.json()
    return [row["_id"] for row in answer.json()]


def test_search_by_metadata_field_as_mandrill_indexes_it():
    assert _search(query="u_trigger_id:t-1") == ["mid1"]  # the 8-day-old one is outside the default 7 days
    assert _search(query="u_trigger_id:t-1", date_from="2025-12-01") == ["mid1", "mid3"]
    assert _search(query="t-2") == ["mid2"]  # a bare term searches every indexed field, metadata included


def test_search_fields_phrases_wildcards_and_filters():
    assert _search(query='subject:"Price drop on shoes"') == ["mid2"]
    assert _search(query="subject:price") == ["mid2"]
    assert _search(query="email:r1@example.com AND tags:cart") == ["mid1"]
    assert _search(query="sender:deals@*") == ["mid2"]
    assert _search(query="*") == ["mid2", "mid1"]
    assert _search(senders=["deals@example.com"]) == ["mid2"]
    assert _search(tags=["cart"]) == ["mid1"]
    assert _search(limit=1) == ["mid2"]


def test_the_answer_has_mandrills_search_fields():
    [row] = mailchimp.search({"key": "k", "query": "u_trigger_id:t-2"}, lambda: KEPT, NOW).json()

    assert set(row) == {
        "ts", "_id", "sender", "template", "subject", "email", "tags", "opens", "opens_detail", "clicks",
        "clicks_detail", "state", "metadata",
    }  # fmt: skip
    assert row["ts"] == (NOW - 1_000) // 1000 and row["state"] == "sent" and row["metadata"] == {"trigger_id": "t-2"}


@pytest.mark.parametrize(
    "doc",
    [{"query": "a OR b"}, {"query": "nofield:x"}, {"limit": 0}, {"limit": 5000}, {"date_from": "yesterday"}],
)
def test_what_search_cannot_run_is_a_validation_error(doc):
    answer = mailchimp.search({"key": "k", **doc}, lambda: KEPT, NOW)

    assert answer.status == 500 and answer.json()["name"] == "ValidationError"
