"""The ESP sandbox as ``make up`` runs it: a real process, real HTTP from ``requests``, a real SMTP session.

One sandbox of this module's own (free ports, files under a temporary home) serves every test; tests tag their
messages with their own trigger ids, and the faults queue is emptied after each test.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import requests

from tests.support.esp import (
    HTTP_TIMEOUT_S,
    MAILCHIMP_KEY,
    SENDGRID_KEY,
    SMTP_PASSWORD,
    SMTP_USER,
    EspSandbox,
    mailchimp_body,
    running_esp_sandbox,
    sendgrid_body,
    trigger_id,
    webhook_body,
)

pytestmark = pytest.mark.integration

SG = {"Authorization": f"Bearer {SENDGRID_KEY}"}


@pytest.fixture(scope="module")
def esp(tmp_path_factory) -> Iterator[EspSandbox]:
    with running_esp_sandbox(tmp_path_factory.mktemp("esp-sandbox")) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _no_leftover_faults(esp: EspSandbox) -> Iterator[None]:
    yield
    esp.clear_faults()


def _post(esp: EspSandbox, path: str, **kwargs) -> requests.Response:
    return esp.session.post(f"{esp.url}{path}", timeout=HTTP_TIMEOUT_S, **kwargs)


def _get(esp: EspSandbox, path: str, **kwargs) -> requests.Response:
    return esp.session.get(f"{esp.url}{path}", timeout=HTTP_TIMEOUT_S, **kwargs)


def _activity(esp: EspSandbox, trigger: str) -> list[dict]:
    answer = _get(
        esp, "/v3/messages", params={"query": f"unique_args['trigger_id']=\"{trigger}\"", "limit": 10}, headers=SG
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["messages"])


def test_sendgrid_accepts_with_202_an_empty_body_and_x_message_id_and_keeps_the_email(esp):
    trigger = trigger_id()
    body = sendgrid_body(trigger, headers={"List-Unsubscribe": "<https://shop.example/u>"})
    body["personalizations"][0]["custom_args"]["variant"] = "b"

    answer = _post(esp, "/v3/mail/send", json=body, headers=SG)

    assert answer.status_code == 202 and answer.content == b""
    x_message_id = answer.headers["X-Message-Id"]
    [kept] = esp.messages(trigger_id=trigger)
    assert kept["provider"] == "sendgrid" and kept["request_id"] == x_message_id
    assert kept["metadata"] == {"trigger_id": trigger, "variant": "b"} and kept["variant"] == "b"
    assert kept["headers"] == {"List-Unsubscribe": "<https://shop.example/u>"}
    on_disk = [json.loads(line) for line in esp.store_path.read_text().splitlines()]
    assert kept in on_disk


def test_sendgrid_refuses_with_its_own_error_bodies(esp):
    trigger = trigger_id()
    missing = _post(esp, "/v3/mail/send", json=sendgrid_body(trigger))
    wrong = _post(esp, "/v3/mail/send", json=sendgrid_body(trigger), headers={"Authorization": "Bearer SG.nope"})
    bad = sendgrid_body(trigger)
    bad["personalizations"][0]["to"][0]["email"] = "ann.example.com"
    invalid = _post(esp, "/v3/mail/send", json=bad, headers=SG)

    assert missing.status_code == 401
    assert missing.json() == {"errors": [{"message": "authorization required", "field": None, "help": None}]}
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["message"] == "The provided authorization grant is invalid, expired, or revoked"
    assert invalid.status_code == 400
    assert invalid.json() == {
        "errors": [
            {
                "message": "Does not contain a valid address.",
                "field": "personalizations.0.to.0.email",
                "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.to",
            }
        ]
    }
    assert esp.messages(trigger_id=trigger) == []


def test_sendgrid_refuses_a_body_over_30_mib_as_nginx_does(esp):
    body = sendgrid_body(trigger_id())
    body["content"][1]["value"] = "x" * (30 * 1024 * 1024)

    answer = _post(esp, "/v3/mail/send", data=json.dumps(body), headers={**SG, "Content-Type": "application/json"})

    assert answer.status_code == 413 and "413 Request Entity Too Large" in answer.text


def test_the_activity_api_finds_a_message_by_its_trigger_for_reconciliation(esp):
    trigger = trigger_id()
    sent = _post(esp, "/v3/mail/send", json=sendgrid_body(trigger, to="bo@example.com"), headers=SG)

    [row] = _activity(esp, trigger)

    assert row["msg_id"].startswith(sent.headers["X-Message-Id"])
    assert (row["to_email"], row["status"]) == ("bo@example.com", "delivered")
    assert _activity(esp, trigger_id()) == []


def test_faults_429_then_500_keep_nothing_and_a_slow_202_keeps_the_email(esp):
    trigger = trigger_id()
    esp.fail_next("sendgrid", {"status": 429, "retry_after": 2}, {"status": 500}, {"status": 202, "delay_ms": 500})

    limited = _post(esp, "/v3/mail/send", json=sendgrid_body(trigger), headers=SG)
    failed = _post(esp, "/v3/mail/send", json=sendgrid_body(trigger), headers=SG)
    assert esp.messages(trigger_id=trigger) == []
    started = time.monotonic()
    slow = _post(esp, "/v3/mail/send", json=sendgrid_body(trigger), headers=SG)

    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.json() == {"errors": [{"message": "too many requests", "field": None, "help": None}]}
    assert failed.status_code == 500
    assert slow.status_code == 202 and time.monotonic() - started >= 0.5
    assert len(esp.messages(trigger_id=trigger)) == 1


def test_a_lost_answer_leaves_the_email_sent_and_the_lookup_finds_it(esp):
    trigger = trigger_id()
    esp.fail_next("sendgrid", {"status": 202, "delay_ms": 3000})

    with pytest.raises(requests.Timeout):
        esp.session.post(f"{esp.url}/v3/mail/send", json=sendgrid_body(trigger), headers=SG, timeout=0.5)

    assert [row["status"] for row in _activity(esp, trigger)] == ["delivered"]


def test_mailchimp_send_search_and_its_errors(esp):
    trigger = trigger_id()

    sent = _post(esp, "/api/1.0/messages/send.json", json=mailchimp_body(trigger))
    plain = _post(esp, "/api/1.0/messages/send", json=mailchimp_body(trigger, to="bo@example.com"))
    wrong = _post(esp, "/api/1.0/messages/send.json", json=mailchimp_body(trigger, key="md-nope"))
    found = _post(esp, "/api/1.0/messages/search.json", json={"key": MAILCHIMP_KEY, "query": f"u_trigger_id:{trigger}"})

    assert sent.status_code == 200
    [entry] = sent.json()
    assert set(entry) == {"email", "status", "_id", "reject_reason"}
    assert (entry["email"], entry["status"], entry["reject_reason"]) == ("ann@example.com", "sent", None)
    assert plain.status_code == 200 and plain.json()[0]["email"] == "bo@example.com"
    assert wrong.status_code == 500
    assert wrong.json() == {"status": "error", "code": -1, "name": "Invalid_Key", "message": "Invalid API key"}
    assert found.status_code == 200
    assert [row["email"] for row in found.json()] == ["bo@example.com", "ann@example.com"]
    assert {row["_id"] for row in found.json()} == {entry["_id"], plain.json()[0]["_id"]}
    kept = esp.messages(trigger_id=trigger)
    assert [m["provider"] for m in kept] == ["mailchimp", "mailchimp"]


def test_the_webhook_is_signed_and_idempotent(esp):
    trigger = trigger_id()
    body = webhook_body(trigger, headers={"X-Campaign": "cart"})

    first = esp.post_webhook(body, idempotency_key=trigger)
    again = esp.post_webhook(body, idempotency_key=trigger)
    reused = esp.post_webhook(webhook_body(trigger, subject="Other"), idempotency_key=trigger)
    unsigned = esp.post_webhook(body, idempotency_key=trigger, secret="not-the-secret")

    assert first.status_code == 202
    [kept] = esp.messages(trigger_id=trigger)
    assert first.json() == {"id": kept["id"], "trigger_id": trigger, "status": "accepted"}
    assert again.status_code == 202 and again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "invalid_signature"
    assert kept["headers"] == {"X-Campaign": "cart"}


def _mail(trigger: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Example Shop <shop@example.com>"
    message["To"] = "ann@example.com"
    message["Subject"] = "Your cart <is> waiting"
    message["X-Cartpulse-Trigger-Id"] = trigger
    message.set_content("Your cart is waiting.")
    message.add_alternative("<p>Your cart is waiting.</p>", subtype="html")
    return message


def test_smtp_with_starttls_and_auth_keeps_the_parsed_message(esp):
    trigger = trigger_id()
    trusted = ssl.create_default_context(cafile=str(esp.cert_path))

    with smtplib.SMTP("127.0.0.1", esp.smtp_port, timeout=HTTP_TIMEOUT_S) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")  # no AUTH offered in clear text
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.send_message(_mail(trigger))
        assert refused.value.smtp_code == 530
        smtp.starttls(context=trusted)
        smtp.ehlo()
        assert smtp.has_extn("auth")
        smtp.login(SMTP_USER, SMTP_PASSWORD)
        smtp.send_message(_mail(trigger), to_addrs=["ann@example.com", "audit@example.com"])

    [kept] = esp.messages(trigger_id=trigger)
    assert kept["provider"] == "smtp" and kept["subject"] == "Your cart <is> waiting"
    assert kept["to"] == ["ann@example.com"] and kept["bcc"] == ["audit@example.com"]
    assert kept["from_name"] == "Example Shop" and kept["html"].startswith("<p>Your cart is waiting.</p>")
    assert kept["text"].startswith("Your cart is waiting.")


def test_smtp_refuses_a_wrong_password_and_answers_faults(esp):
    trigger = trigger_id()
    trusted = ssl.create_default_context(cafile=str(esp.cert_path))
    esp.fail_next("smtp", {"status": 451})

    with smtplib.SMTP("127.0.0.1", esp.smtp_port, timeout=HTTP_TIMEOUT_S) as smtp:
        smtp.starttls(context=trusted)
        with pytest.raises(smtplib.SMTPAuthenticationError) as denied:
            smtp.login(SMTP_USER, "wrong")
        assert denied.value.smtp_code == 535
        smtp.login(SMTP_USER, SMTP_PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            smtp.send_message(_mail(trigger))
        assert deferred.value.smtp_code == 451
        smtp.send_message(_mail(trigger))

    assert len(esp.messages(trigger_id=trigger)) == 1


def test_the_outbox_shows_the_message_escaped_and_its_html_sandboxed(esp):
    trigger = trigger_id()
    body = sendgrid_body(trigger, subject=f"Deals <b>{trigger}</b> & more")
    body["content"][1]["value"] = "<h1>Hi</h1><script>alert(1)</script>"
    _post(esp, "/v3/mail/send", json=body, headers=SG)
    [kept] = esp.messages(trigger_id=trigger)

    outbox = _get(esp, "/")
    page = _get(esp, f"/outbox/{kept['id']}")

    assert outbox.status_code == 200 and outbox.headers["Content-Type"].startswith("text/html")
    assert f"Deals &lt;b&gt;{trigger}&lt;/b&gt; &amp; more" in outbox.text
    assert f"<b>{trigger}</b>" not in outbox.text and f"/outbox/{kept['id']}" in outbox.text
    assert page.status_code == 200 and "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert 'sandbox=""' in page.text and 'srcdoc="&lt;h1&gt;Hi&lt;/h1&gt;&lt;script&gt;' in page.text
    assert "<script>" not in page.text


def test_kept_messages_and_idempotency_survive_a_restart_and_reset_forgets_them(tmp_path):
    trigger = trigger_id()
    body = webhook_body(trigger)
    with running_esp_sandbox(tmp_path) as first:
        assert first.post_webhook(body, idempotency_key=trigger).status_code == 202
        assert _post(first, "/v3/mail/send", json=sendgrid_body(trigger), headers=SG).status_code == 202

    with running_esp_sandbox(tmp_path) as second:
        assert [m["provider"] for m in second.messages(trigger_id=trigger)] == ["webhook", "sendgrid"]
        replay = second.post_webhook(body, idempotency_key=trigger)
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert len(second.messages(trigger_id=trigger)) == 2
        second.reset()
        assert second.messages() == [] and second.store_path.read_text() == ""
