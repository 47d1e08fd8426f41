"""Retries, breakers and fallback, against scripted providers and a recorded (not real) sleep."""

from __future__ import annotations

import pytest

from connectors.errors import CredentialsRejected, OutcomeUnknown, PermanentError, TransientError
from connectors.esp.message import EmailMessage
from connectors.esp.resilience import AllProvidersDown, ResilientSender, RetryPolicy, SendOutcomeUnknown
from connectors.memory import ScriptedProvider

MESSAGE = EmailMessage(
    trigger_id="t1",
    to_email="ann@example.com",
    from_email="shop@example.com",
    subject="Your cart",
    html="<p>hi</p>",
    text="hi",
)


def _sender(*providers, **policy):
    sleeps: list[float] = []
    sender = ResilientSender(list(providers), RetryPolicy(**policy), sleep=sleeps.append)
    return sender, sleeps


def test_retries_through_a_burst_of_429_and_500_honouring_retry_after():
    primary = ScriptedProvider.answering(
        "primary",
        [
            TransientError("429", retry_after=2.0),
            TransientError("500"),
            TransientError("429", retry_after=1.0),
        ],
    )
    sender, sleeps = _sender(primary, max_attempts=5, max_elapsed_s=60)
    result = sender.send(MESSAGE)
    assert result.provider == "primary" and primary.calls == 4 and len(primary.sent) == 1
    assert sleeps[0] >= 2.0 and sleeps[2] >= 1.0
    assert all(s <= 8.0 for s in sleeps[1:2])


def test_a_permanent_refusal_is_not_retried_nor_sent_elsewhere():
    primary = ScriptedProvider.answering("primary", [PermanentError("400 bad email", detail="HTTP 400")])
    fallback = ScriptedProvider("fallback")
    sender, _ = _sender(primary, fallback)
    with pytest.raises(PermanentError, match="400 bad email"):
        sender.send(MESSAGE)
    assert primary.calls == 1 and fallback.calls == 0


def test_fallback_takes_the_email_when_the_primary_stays_down():
    primary = ScriptedProvider.answering("primary", [TransientError("500")] * 10)
    fallback = ScriptedProvider("fallback")
    sender, _ = _sender(primary, fallback, max_attempts=3)
    assert sender.send(MESSAGE).provider == "fallback"
    assert primary.calls == 3 and len(fallback.sent) == 1 and primary.sent == []


def test_all_down_says_when_to_try_again():
    primary = ScriptedProvider.answering("primary", [TransientError("429", retry_after=30.0)] * 5)
    sender, sleeps = _sender(primary, max_attempts=3, max_elapsed_s=10)
    with pytest.raises(AllProvidersDown) as info:
        sender.send(MESSAGE)
    assert info.value.retry_after == 30.0
    assert primary.calls == 1 and sleeps == []  # a 30 s hint does not fit a 10 s budget: give up at once


def test_an_open_breaker_skips_straight_to_the_fallback():
    primary = ScriptedProvider.answering("primary", [TransientError("500")] * 100)
    fallback = ScriptedProvider("fallback")
    sender, _ = _sender(primary, fallback, max_attempts=2, breaker_fail_max=3, breaker_reset_s=600)
    for _ in range(4):
        sender.send(MESSAGE)
    calls_when_open = primary.calls
    sender.send(MESSAGE)
    assert primary.calls == calls_when_open  # the breaker is open: the primary is not even called
    assert len(fallback.sent) == 5


def test_an_unknown_outcome_stops_at_once_and_names_the_provider_to_ask():
    """A 5xx or a timeout after sending: neither a retry nor the fallback, which could send a second email."""
    primary = ScriptedProvider.answering("primary", [OutcomeUnknown("500 after sending")])
    fallback = ScriptedProvider("fallback")
    sender, sleeps = _sender(primary, fallback)
    with pytest.raises(SendOutcomeUnknown) as info:
        sender.send(MESSAGE)
    assert info.value.provider == "primary"
    assert primary.calls == 1 and fallback.calls == 0 and sleeps == []


def test_a_provider_that_deduplicates_is_retried_through_unknown_outcomes():
    webhook = ScriptedProvider.answering("webhook", [OutcomeUnknown("timeout"), OutcomeUnknown("502")])
    webhook.idempotent_resend = True
    sender, _ = _sender(webhook, max_attempts=4)
    assert sender.send(MESSAGE).provider == "webhook" and webhook.calls == 3


def test_a_refused_key_sends_through_the_fallback_and_is_reported_once():
    told: list[tuple[str, str | None]] = []
    now = [0.0]
    primary = ScriptedProvider.answering("primary", [CredentialsRejected("primary refused the credential: 401")] * 2)
    fallback = ScriptedProvider("fallback")
    sender = ResilientSender(
        [primary, fallback],
        RetryPolicy(breaker_reset_s=30),
        sleep=lambda _: None,
        on_credentials=lambda name, problem: told.append((name, problem)),
        clock=lambda: now[0],
    )
    for _ in range(5):
        assert sender.send(MESSAGE).provider == "fallback"
    assert primary.calls == 1, "a refused key is not retried, and the provider is set aside meanwhile"
    assert told == [("primary", "primary refused the credential: 401")]
    now[0] = 31.0  # past breaker_reset: the key is tried again, still refused, still reported only once
    sender.send(MESSAGE)
    assert primary.calls == 2 and len(told) == 1
    now[0] = 62.0  # fixed: the primary takes mail again, and says so
    assert sender.send(MESSAGE).provider == "primary"
    assert told[-1] == ("primary", None)


def test_a_refused_key_with_no_fallback_defers_rather_than_failing_the_email():
    primary = ScriptedProvider.answering("primary", [CredentialsRejected("primary refused the credential: 403")])
    sender, _ = _sender(primary)
    with pytest.raises(AllProvidersDown, match="refused the credential"):
        sender.send(MESSAGE)


def test_without_a_listener_the_sender_logs_a_refused_key_once(caplog):
    primary = ScriptedProvider.answering("primary", [CredentialsRejected("primary refused the credential: 401")])
    sender, _ = _sender(primary, ScriptedProvider("fallback"))
    with caplog.at_level("ERROR"):
        for _ in range(3):
            sender.send(MESSAGE)
    assert len([r for r in caplog.records if "refused the credential" in r.getMessage()]) == 1
