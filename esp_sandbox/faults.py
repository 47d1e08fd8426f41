"""Failure injection: a queue of the next answers each endpoint gives, set by tests through ``/_sandbox/faults``.

``POST /_sandbox/faults`` with ``{"provider": "sendgrid", "responses": [{"status": 429, "retry_after": 2},
{"status": 500}, {"status": 202, "delay_ms": 1500}]}`` makes the next three authenticated SendGrid sends answer
429 (with ``Retry-After: 2``), then 500, then normally but 1.5 s late; the fourth is back to normal. Entries:

==================  ==========================================================================================
``status``          the HTTP status (for ``smtp``: the SMTP reply code). A 2xx means "answer normally".
``retry_after``     seconds, sent as ``Retry-After`` (SendGrid also gets its ``X-RateLimit-*`` headers)
``delay_ms``        wait this long before answering (a slow provider; with a 2xx the message is kept before the
                    wait, so a client that gives up has still sent it, as with a real provider)
``accepted``        with an error status: keep the message anyway, then answer the error (the provider took the
                    mail but the answer was lost: what reconciliation after a crash is for)
``reject_reason``   ``mailchimp`` only: the recipients get ``"status": "rejected"`` with this reason
``body``            replace the provider-shaped error body with this JSON
==================  ==========================================================================================

A fault applies to a request that passed authentication, as a provider's rate limiter does; an error answer
keeps nothing (unless ``accepted``). Keys of the queue (``provider``) are the endpoints of :data:`ENDPOINTS`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ENDPOINTS", "MAX_DELAY_MS", "Fault", "FaultQueue", "FaultSpecError", "parse_faults"]

#: What a fault can be set for: the four ways in, and the two lookup APIs used for reconciliation.
ENDPOINTS = ("sendgrid", "sendgrid-activity", "mailchimp", "mailchimp-search", "webhook", "smtp")
#: A delay longer than this is surely a typo in a test (and would hold a server task for long).
MAX_DELAY_MS = 300_000
_MAX_QUEUED = 10_000


class FaultSpecError(ValueError):
    """A fault request that cannot be queued; ``field`` names the bad part."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Fault:
    """One scripted answer; see the module docstring for each field."""

    status: int
    retry_after: float | None = None
    delay_ms: int = 0
    accepted: bool = False
    reject_reason: str | None = None
    body: Any = None

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in (None, False) or key == "status"}


def parse_faults(doc: Any) -> tuple[str, list[Fault]]:
    """``{"provider": ..., "responses": [...]}`` → the endpoint and its faults.

    :raises FaultSpecError: naming the first bad field.
    """
    if not isinstance(doc, Mapping):
        raise FaultSpecError("", 'the body must be a JSON object {"provider": ..., "responses": [...]}')
    endpoint = doc.get("provider")
    if endpoint not in ENDPOINTS:
        raise FaultSpecError("provider", f"must be one of {', '.join(ENDPOINTS)}; got {endpoint!r}")
    responses = doc.get("responses")
    if not isinstance(responses, list) or not responses:
        raise FaultSpecError("responses", "must be a non-empty array of {status, retry_after, delay_ms, ...}")
    return endpoint, [_fault(f"responses.{i}", entry, endpoint) for i, entry in enumerate(responses)]


def _fault(where: str, entry: Any, endpoint: str) -> Fault:
    if not isinstance(entry, Mapping):
        raise FaultSpecError(where, "must be an object")
    unknown = set(entry) - {"status", "retry_after", "delay_ms", "accepted", "reject_reason", "body"}
    if unknown:
        raise FaultSpecError(f"{where}.{sorted(unknown)[0]}", "unknown key")
    status = entry.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise FaultSpecError(f"{where}.status", f"must be an integer from 200 to 599; got {status!r}")
    retry_after = entry.get("retry_after")
    if retry_after is not None and (
        isinstance(retry_after, bool) or not isinstance(retry_after, int | float) or retry_after < 0
    ):
        raise FaultSpecError(f"{where}.retry_after", "must be a number of seconds, 0 or more")
    delay_ms = entry.get("delay_ms", 0)
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, int) or not 0 <= delay_ms <= MAX_DELAY_MS:
        raise FaultSpecError(f"{where}.delay_ms", f"must be an integer from 0 to {MAX_DELAY_MS}")
    accepted = entry.get("accepted", False)
    if not isinstance(accepted, bool):
        raise FaultSpecError(f"{where}.accepted", "must be true or false")
    reject_reason = entry.get("reject_reason")
    if reject_reason is not None and (endpoint != "mailchimp" or not isinstance(reject_reason, str)):
        raise FaultSpecError(f"{where}.reject_reason", "is a string, for the mailchimp endpoint only")
    return Fault(status, retry_after, delay_ms, accepted, reject_reason, entry.get("body"))


class FaultQueue:
    """The pending faults of every endpoint; thread-safe (the SMTP server takes its faults from its own thread)."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Fault]] = {endpoint: deque() for endpoint in ENDPOINTS}
        self._lock = threading.Lock()

    def push(self, endpoint: str, faults: list[Fault]) -> int:
        """Append ``faults`` to the endpoint's queue; returns how many are now pending for it."""
        with self._lock:
            queue = self._queues[endpoint]
            if len(queue) + len(faults) > _MAX_QUEUED:
                raise FaultSpecError("responses", f"at most {_MAX_QUEUED} faults may be pending per endpoint")
            queue.extend(faults)
            return len(queue)

    def next(self, endpoint: str) -> Fault | None:
        """The fault the next request to ``endpoint`` gets (and it is used up), or ``None``: answer normally."""
        with self._lock:
            queue = self._queues[endpoint]
            return queue.popleft() if queue else None

    def clear(self, endpoint: str | None = None) -> int:
        """Drop the pending faults of one endpoint, or of all; returns how many were dropped."""
        with self._lock:
            targets = [endpoint] if endpoint else list(self._queues)
            dropped = sum(len(self._queues[name]) for name in targets)
            for name in targets:
                self._queues[name].clear()
            return dropped

    def pending(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {name: [fault.to_json() for fault in queue] for name, queue in self._queues.items()}
