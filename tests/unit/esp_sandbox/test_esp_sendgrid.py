"""SendGrid Mail Send: SendGrid's exact answers, each validation naming its field, and what is kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esp_sandbox import sendgrid
from esp_sandbox.faults import Fault
from esp_sandbox.wire import Incoming, KeySet
from tests.support.esp import sendgrid_body

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
KEYS = KeySet([b"SG.sandbox-key"])


def _incoming(body: Any, authorization: str = "Bearer SG.sandbox-key") -> Incoming:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Incoming(headers={"authorization": authorization}, body=raw, received_at_ms=NOW)


def _fields(body: dict[str, Any]) -> list[str | None]:
    return [error.field for error in sendgrid.validate(body)]


def test_an_accepted_send_is_202_with_an_empty_body_and_an_x_message_id():
    answer, records = sendgrid.accept(_incoming(sendgrid_body("t1")))

    assert answer.status == 202 and answer.body == b""
    x_message_id = answer.headers["X-Message-Id"]
    assert len(x_message_id) == 22
    [record] = records
    assert record.provider == "sendgrid" and record.request_id == x_message_id
    assert record.provider_message_id.startswith(x_message_id)
    assert record.to == ["ann@example.com"] and record.trigger_id == "t1"
    assert record.text == "Your cart is waiting." and record.html == "<p>Your cart is waiting.</p>"


def test_each_personalization_is_one_email_with_merged_custom_args_headers_and_subject():
    body = sendgrid_body("t1", custom_args={"campaign": "cart", "trigger_id": "top"}, headers={"X-A": "1", "X-B": "1"})
    body["personalizations"] = [
        {
            "to": [{"email": "a@example.com"}],
            "custom_args": {"trigger_id": "t1", "variant": "b"},
            "headers": {"X-B": "2"},
        },
        {"to": [{"email": "b@example.com"}], "cc": [{"email": "c@example.com"}], "subject": "Own subject"},
    ]

    _, (first, second) = sendgrid.accept(_incoming(body))

    assert first.metadata == {"campaign": "cart", "trigger_id": "t1", "variant": "b"} and first.variant == "b"
    assert first.headers == {"X-A": "1", "X-B": "2"}
    assert second.trigger_id == "top" and second.cc == ["c@example.com"] and second.subject == "Own subject"
    assert first.request_id == second.request_id and first.provider_message_id != second.provider_message_id


def test_a_missing_key_and_a_wrong_key_get_sendgrids_401_bodies():
    missing = sendgrid.authenticate(_incoming({}, authorization=""), KEYS)
    wrong = sendgrid.authenticate(_incoming({}, authorization="Bearer SG.other"), KEYS)
    basic = sendgrid.authenticate(_incoming({}, authorization="Basic SG.sandbox-key"), KEYS)

    assert missing is not None and missing.status == 401
    assert missing.json() == {"errors": [{"message": "authorization required", "field": None, "help": None}]}
    assert wrong is not None and wrong.status == 401
    assert wrong.json()["errors"][0]["message"] == "The provided authorization grant is invalid, expired, or revoked"
    assert basic is not None and basic.status == 401
    assert sendgrid.authenticate(_incoming({}), KEYS) is None


def test_a_body_that_is_not_a_json_object_is_a_bad_request():
    for raw in (b"{not json", b"[1, 2]", b"\xff"):
        answer, records = sendgrid.accept(_incoming(raw))
        assert answer.status == 400 and records == []
        assert answer.json() == {"errors": [{"message": "Bad Request", "field": None, "help": None}]}


def test_every_problem_is_reported_with_its_field():
    answer, records = sendgrid.accept(_incoming({}))

    assert answer.status == 400 and records == []
    errors = answer.json()["errors"]
    assert [e["field"] for e in errors] == ["personalizations", "from.email", "subject", "content"]
    assert all(set(e) == {"message", "field", "help"} for e in errors)
    assert errors[2]["message"].startswith("The subject is required.")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["personalizations"][0].pop("to"), "personalizations.0.to"),
        (lambda b: b["personalizations"][0].update(to=[]), "personalizations.0.to"),
        (lambda b: b["personalizations"][0].update(to=[{"email": "not-an-address"}]), "personalizations.0.to.0.email"),
        (lambda b: b["personalizations"][0].update(to=[{"name": "no email"}]), "personalizations.0.to.0.email"),
        (lambda b: b["personalizations"][0].update(cc=[{"email": "a@@b.com"}]), "personalizations.0.cc.0.email"),
        (lambda b: b["personalizations"][0].update(bcc=[{"email": "ann@example.com"}]), "personalizations.0"),
        (lambda b: b.update({"from": {"email": "shop.example.com"}}), "from.email"),
        (lambda b: b.update({"from": {"name": "Shop"}}), "from.email"),
        (lambda b: b.pop("subject"), "subject"),
        (lambda b: b.update(subject=""), "subject"),
        (lambda b: b.pop("content"), "content"),
        (lambda b: b.update(content=[{"type": "text/html", "value": ""}]), "content.0.value"),
        (lambda b: b.update(content=[{"value": "x"}]), "content.0.type"),
        (lambda b: b.update(content=list(reversed(b["content"]))), "content"),
        (lambda b: b.update(reply_to={"email": "nope"}), "reply_to.email"),
        (lambda b: b.update(custom_args=["trigger_id"]), "custom_args"),
    ],
)
def test_one_bad_field_is_named(change, field):
    body = sendgrid_body("t1")
    change(body)

    assert _fields(body) == [field]


def test_a_subject_in_every_personalization_or_a_template_replaces_the_top_level_one():
    per_personalization = sendgrid_body("t1")
    del per_personalization["subject"]
    per_personalization["personalizations"][0]["subject"] = "Hi"
    template = sendgrid_body("t1", template_id="d-123")
    del template["subject"], template["content"]

    assert sendgrid.validate(per_personalization) == []
    assert sendgrid.validate(template) == []
    _, [record] = sendgrid.accept(_incoming(template))
    assert record.template_id == "d-123" and record.subject == ""


def test_at_most_1000_personalizations_and_1000_recipients():
    body = sendgrid_body("t1")
    body["personalizations"] = [{"to": [{"email": f"p{i}@example.com"}]} for i in range(1001)]
    [error] = sendgrid.validate(body)
    assert error.field == "personalizations" and "You have provided 1001 personalizations" in error.message

    body["personalizations"] = [
        {"to": [{"email": f"p{i}@example.com"}, {"email": f"q{i}@example.com"}]} for i in range(501)
    ]
    [error] = sendgrid.validate(body)
    assert error.message == "There is a limit of 1000 total recipients (to + cc + bcc) per request."


def test_over_30_mib_is_nginxs_html_413():
    answer = sendgrid.too_large()

    assert sendgrid.MAX_BODY_BYTES == 30 * 1024 * 1024
    assert answer.status == 413 and answer.media_type == "text/html"
    assert b"413 Request Entity Too Large" in answer.body


def test_an_injected_429_has_sendgrids_body_and_rate_limit_headers():
    answer = sendgrid.fault_answer(Fault(429, retry_after=2), NOW)

    assert answer.status == 429
    assert answer.json() == {"errors": [{"message": "too many requests", "field": None, "help": None}]}
    assert answer.headers["Retry-After"] == "2"
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert answer.headers["X-RateLimit-Reset"] == str(NOW // 1000 + 2)


def test_an_injected_500_and_a_custom_body():
    assert sendgrid.fault_answer(Fault(500), NOW).json()["errors"][0]["message"] == "internal server error"
    custom = sendgrid.fault_answer(Fault(503, retry_after=1.2, body={"oops": True}), NOW)
    assert custom.status == 503 and custom.json() == {"oops": True} and custom.headers["Retry-After"] == "2"
