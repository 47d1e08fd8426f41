"""Retries with backoff and jitter, a circuit breaker per provider, and the fallback provider.

Libraries, not our own loops: tenacity for the retry schedule (exponential backoff with full jitter,
never sooner than the provider's ``Retry-After``), pybreaker for the breakers. The budget per email
is small (seconds): past it the email is deferred and retried later by the delivery job, so an outage
delays mail without holding up everyone else's.

Two failures are not retried in place. :class:`~connectors.errors.OutcomeUnknown` (the request went out, then a
timeout or a 5xx) may mean the provider took the message: retrying, or handing it to a fallback, could send it
twice, so the sender stops and says which provider to ask (:class:`SendOutcomeUnknown`); only a provider that
deduplicates by the trigger id (``idempotent_resend``) is retried. :class:`~connectors.errors.CredentialsRejected`
is the provider's key, not the email: the provider is set aside for ``breaker_reset`` (one log line per episode,
and ``on_credentials`` is told) and the fallbacks take the mail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pybreaker
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from connectors.errors import CredentialsRejected, OutcomeUnknown, PermanentError, TransientError
from connectors.esp.message import EmailMessage, EmailProvider, SendResult

__all__ = ["AllProvidersDown", "ResilientSender", "RetryPolicy", "SendOutcomeUnknown"]

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


class SendOutcomeUnknown(OutcomeUnknown):
    """``provider`` may have taken the message: ask it (``find_sent``) before sending again anywhere."""

    def __init__(self, provider: str, cause: OutcomeUnknown) -> None:
        super().__init__(str(cause), retry_after=cause.retry_after)
        self.provider = provider


class ResilientSender:
    """Sends through the primary provider, then the fallbacks, each with retries and a breaker."""

    def __init__(
        self,
        providers: Sequence[EmailProvider],
        policy: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        on_credentials: Callable[[str, str | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """:param on_credentials: told ``(provider, problem)`` when a provider starts refusing its key, and
        ``(provider, None)`` when it takes it again; without it, the sender logs these itself. (The delivery
        job's parallel instances agree through Redis which of them says it, so it is said once.)"""
        if not providers:
            raise ValueError("at least one email provider is needed")
        self.providers = list(providers)
        self.policy = policy
        self.sleep = sleep
        self.breakers = {
            p.name: pybreaker.CircuitBreaker(
                fail_max=policy.breaker_fail_max,
                reset_timeout=policy.breaker_reset_s,
                exclude=[PermanentError, CredentialsRejected],
                name=p.name,
            )
            for p in self.providers
        }
        self.attempts = 0
        self.on_credentials = on_credentials
        self.clock = clock
        #: provider → (when its key was refused, by monotonic clock; the refusal), while it is set aside
        self.key_refused: dict[str, tuple[float, str]] = {}

    def send(self, message: EmailMessage, before_provider: Callable[[str], None] | None = None) -> SendResult:
        """The first provider's acceptance; PermanentError (no fallback: the message itself is refused) or
        AllProvidersDown (with the longest ``retry_after`` hint) otherwise.

        :param before_provider: called with each provider's name before it is first called (the delivery
            stage records it, to know whom to ask after a crash).
        """
        failures: list[str] = []
        hints: list[float] = []
        for provider in self.providers:
            refused = self._key_still_refused(provider.name)
            if refused is not None:
                failures.append(refused)
                continue
            if before_provider is not None:
                before_provider(provider.name)
            try:
                result = self._send_with_retries(provider, message)
            except PermanentError:
                raise
            except CredentialsRejected as exc:
                self._refuse_key(provider.name, str(exc))
                failures.append(str(exc))
                continue
            except OutcomeUnknown as exc:
                raise SendOutcomeUnknown(provider.name, exc) from exc
            except TransientError as exc:
                failures.append(f"{provider.name}: {exc}")
                if exc.retry_after is not None:
                    hints.append(exc.retry_after)
                log.warning("provider %s gave up on %s: %s", provider.name, message.trigger_id, exc)
            else:
                self._key_taken(provider.name)
                return result
        raise AllProvidersDown("; ".join(failures), retry_after=max(hints) if hints else None)

    def _key_still_refused(self, name: str) -> str | None:
        """The refusal while the provider is set aside; None once it is time to try its key again."""
        refused = self.key_refused.get(name)
        if refused is None or self.clock() - refused[0] >= self.policy.breaker_reset_s:
            return None
        return f"{name}: set aside, its credential was refused: {refused[1]}"

    def _refuse_key(self, name: str, problem: str) -> None:
        first = name not in self.key_refused
        self.key_refused[name] = (self.clock(), problem)
        if not first:
            return
        if self.on_credentials is not None:
            self.on_credentials(name, problem)
        else:
            log.error("%s; its emails go to the fallback providers until the credential is fixed", problem)

    def _key_taken(self, name: str) -> None:
        if self.key_refused.pop(name, None) is not None:
            if self.on_credentials is not None:
                self.on_credentials(name, None)
            else:
                log.warning("%s takes its credential again", name)

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

        def worth_retrying(error: BaseException) -> bool:
            if isinstance(error, CredentialsRejected):
                return False
            if isinstance(error, OutcomeUnknown):
                return bool(getattr(provider, "idempotent_resend", False))
            return isinstance(error, TransientError)

        retrying = Retrying(
            retry=retry_if_exception(worth_retrying), wait=wait, stop=stop, sleep=self.sleep, reraise=True
        )
        return retrying(attempt)


class _BreakerOpen(TransientError):
    """The provider's breaker is open: skip straight to the fallback."""
