"""Retries with backoff and jitter, a circuit breaker per provider, and the fallback provider.

Libraries, not our own loops: tenacity for the retry schedule (exponential backoff with full jitter,
never sooner than the provider's ``Retry-After``), pybreaker for the breakers. The budget per email
is small (seconds): past it the email is deferred and retried later by the delivery job, so an outage
delays mail without holding up everyone else's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pybreaker
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from connectors.errors import PermanentError, TransientError
from connectors.esp.message import EmailMessage, EmailProvider, SendResult

__all__ = ["AllProvidersDown", "ResilientSender", "RetryPolicy"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """:param max_attempts: calls per provider per email; :param max_elapsed_s: time budget per provider."""

    max_attempts: int = 4
    max_elapsed_s: float = 15.0
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    breaker_fail_max: int = 5
    breaker_reset_s: float = 30.0


class AllProvidersDown(TransientError):
    """Every provider failed transiently within its budget; try the email again later."""


class ResilientSender:
    """Sends through the primary provider, then the fallbacks, each with retries and a breaker."""

    def __init__(
        self,
        providers: Sequence[EmailProvider],
        policy: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not providers:
            raise ValueError("at least one email provider is needed")
        self.providers = list(providers)
        self.policy = policy
        self.sleep = sleep
        self.breakers = {
            p.name: pybreaker.CircuitBreaker(
                fail_max=policy.breaker_fail_max,
                reset_timeout=policy.breaker_reset_s,
                exclude=[PermanentError],
                name=p.name,
            )
            for p in self.providers
        }
        self.attempts = 0

    def send(self, message: EmailMessage, before_provider: Callable[[str], None] | None = None) -> SendResult:
        """The first provider's acceptance; PermanentError (no fallback: the message itself is refused) or
        AllProvidersDown (with the longest ``retry_after`` hint) otherwise.

        :param before_provider: called with each provider's name before it is first called (the delivery
            stage records it, to know whom to ask after a crash).
        """
        failures: list[str] = []
        hints: list[float] = []
        for provider in self.providers:
            if before_provider is not None:
                before_provider(provider.name)
            try:
                return self._send_with_retries(provider, message)
            except PermanentError:
                raise
            except TransientError as exc:
                failures.append(f"{provider.name}: {exc}")
                if exc.retry_after is not None:
                    hints.append(exc.retry_after)
                log.warning("provider %s gave up on %s: %s", provider.name, message.trigger_id, exc)
        raise AllProvidersDown("; ".join(failures), retry_after=max(hints) if hints else None)

    def _send_with_retries(self, provider: EmailProvider, message: EmailMessage) -> SendResult:
        breaker = self.breakers[provider.name]
        started = time.monotonic()

        def attempt() -> SendResult:
            self.attempts += 1
            try:
                return breaker.call(provider.send, message)
            except pybreaker.CircuitBreakerError as exc:
                raise _BreakerOpen(f"{provider.name}: circuit open after repeated failures") from exc

        def wait(state: RetryCallState) -> float:
            backoff = wait_random_exponential(multiplier=self.policy.initial_backoff_s, max=self.policy.max_backoff_s)
            error = state.outcome.exception() if state.outcome else None
            hint = getattr(error, "retry_after", None) or 0.0
            return max(backoff(state), hint)

        def stop(state: RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, _BreakerOpen) or stop_after_attempt(self.policy.max_attempts)(state):
                return True
            upcoming = wait(state)
            return time.monotonic() - started + upcoming > self.policy.max_elapsed_s

        retrying = Retrying(
            retry=retry_if_exception_type(TransientError), wait=wait, stop=stop, sleep=self.sleep, reraise=True
        )
        return retrying(attempt)


class _BreakerOpen(TransientError):
    """The provider's breaker is open: skip straight to the fallback."""
