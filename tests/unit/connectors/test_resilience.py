"""Retries, breakers and fallback, against scripted providers and a recorded (not real) sleep."""

from __future__ import annotations

import pytest

from connectors.errors import PermanentError, TransientError
from connectors.esp.message import EmailMessage
from connectors.esp.resilience import AllProvidersDown, ResilientSender, RetryPolicy
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
