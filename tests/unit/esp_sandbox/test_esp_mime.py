"""An SMTP message parsed with the stdlib email package: parts, recipients, and the sender's metadata headers."""

from __future__ import annotations

import json
from email.message import EmailMessage

from esp_sandbox.mime import parse_message

NOW = 1_767_225_600_000


def _mail(**headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Example Shop <shop@example.com>"
    message["To"] = "Ann <ann@example.com>"
    message["Subject"] = "Your cart <3"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("plain part")
    message.add_alternative("<p>html part é</p>", subtype="html")
    return message


def test_parts_addresses_and_headers():
    raw = _mail(Cc="bo@example.com", X_Cartpulse_Trigger_Id="t1", X_Cartpulse_variant="b").as_bytes()

    record = parse_message(raw, "bounce@example.com", ["ann@example.com", "bo@example.com", "hidden@example.com"], NOW)

    assert record.provider == "smtp" and record.provider_message_id == record.id
    assert record.from_email == "shop@example.com" and record.from_name == "Example Shop"
    assert record.to == ["ann@example.com"] and record.cc == ["bo@example.com"] and record.bcc == ["hidden@example.com"]
    assert record.subject == "Your cart <3"
    assert record.text == "plain part\n" and record.html == "<p>html part é</p>\n"
    assert record.trigger_id == "t1" and record.variant == "b"
    assert record.headers["X-Cartpulse-Trigger-Id"] == "t1"


def test_metadata_from_sendgrid_and_mandrill_smtp_headers_ours_win():
    raw = _mail(
        X_SMTPAPI=json.dumps({"unique_args": {"trigger_id": "from-sendgrid", "campaign": "cart"}}),
        X_MC_Metadata=json.dumps({"shop": "s1", "campaign": "browse"}),
        X_Cartpulse_Trigger_Id="ours",
        X_Cartpulse_Reminder_Index="2",
    ).as_bytes()

    record = parse_message(raw, "", ["ann@example.com"], NOW)

    assert record.metadata == {"trigger_id": "ours", "campaign": "browse", "shop": "s1", "reminder_index": "2"}


def test_a_plain_message_without_to_header_uses_the_envelope_and_ignores_bad_json():
    raw = b"From: shop@example.com\r\nSubject: hi\r\nX-MC-Metadata: {nope\r\n\r\njust text\r\n"

    record = parse_message(raw, "shop@example.com", ["ann@example.com"], NOW)

    assert record.to == ["ann@example.com"] and record.bcc == []
    assert record.text == "just text\r\n" and record.html is None and record.metadata == {}


def test_the_envelope_sender_is_used_when_there_is_no_from_header():
    record = parse_message(b"Subject: x\r\n\r\nbody\r\n", "env@example.com", ["a@example.com"], NOW)

    assert record.from_email == "env@example.com" and record.from_name is None
