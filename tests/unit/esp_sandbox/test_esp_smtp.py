"""The SMTP handler and its login check, without a socket: what DATA keeps and replies, faults included."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from types import SimpleNamespace

from aiosmtpd.smtp import LoginPassword

from esp_sandbox.faults import Fault, FaultQueue
from esp_sandbox.metrics import SandboxMetrics
from esp_sandbox.smtp import Credentials, OutboxHandler
from esp_sandbox.store import MessageStore

NOW = 1_767_225_600_000


def _envelope() -> SimpleNamespace:
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = "ann@example.com"
    message["Subject"] = "Hi"
    message["X-Cartpulse-Trigger-Id"] = "t1"
    message.set_content("body")
    raw = message.as_bytes()
    return SimpleNamespace(
        original_content=raw, content=raw, mail_from="shop@example.com", rcpt_tos=["ann@example.com"]
    )


def _handler() -> tuple[OutboxHandler, MessageStore, FaultQueue]:
    store, faults = MessageStore(), FaultQueue()
    return OutboxHandler(store, faults, SandboxMetrics(), clock=lambda: NOW), store, faults


def _data(handler: OutboxHandler) -> str:
    return asyncio.run(handler.handle_DATA(None, None, _envelope()))  # type: ignore[arg-type]


def test_data_is_kept_and_the_reply_names_its_id():
    handler, store, _ = _handler()

    reply = _data(handler)

    [record] = store.select()
    assert reply == f"250 2.0.0 Ok: queued as {record.id}"
    assert record.trigger_id == "t1" and record.received_at_ms == NOW
    assert handler.metrics.value("cartpulse_esp_sandbox_messages_kept_total", provider="smtp") == 1


def test_a_fault_replies_its_code_and_keeps_nothing_unless_accepted():
    handler, store, faults = _handler()
    faults.push("smtp", [Fault(451), Fault(550), Fault(554, accepted=True)])

    assert _data(handler).startswith("451 4.3.0")
    assert _data(handler).startswith("550 5.3.0")
    assert len(store) == 0
    assert _data(handler).startswith("554 5.3.0") and len(store) == 1
    assert _data(handler).startswith("250 ")


def test_credentials_accept_only_the_configured_login():
    check = Credentials("sandbox", "secret")

    def result(login: bytes, password: bytes):
        return check(None, None, None, "PLAIN", LoginPassword(login, password))  # type: ignore[arg-type]

    assert result(b"sandbox", b"secret").success
    assert not result(b"sandbox", b"wrong").success
    assert not result(b"other", b"secret").success
    assert not check(None, None, None, "CRAM-MD5", b"x").success  # type: ignore[arg-type]
