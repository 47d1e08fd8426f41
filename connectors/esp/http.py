"""The one place HTTP providers turn requests' exceptions and status codes into ours."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import requests

from connectors.errors import CredentialsRejected, OutcomeUnknown, PermanentError, TransientError
from connectors.esp.message import DEFAULT_HTTP_TIMEOUT_S, http_error_detail

__all__ = ["NOT_TAKEN_STATUSES", "network_error", "post", "retry_after_seconds"]

#: error answers that say the request was not acted on, so repeating it is safe: timed out reading it, rate limited
NOT_TAKEN_STATUSES = frozenset({408, 429})


def network_error(provider: str, url: str, exc: requests.RequestException, timeout_s: float) -> TransientError:
    """A failed call as ours: before the request went out (no connection) it is safe to repeat; after it (no
    answer in time, the connection dropped mid-answer) the provider may have taken it: :class:`OutcomeUnknown`."""
    if isinstance(exc, requests.ConnectTimeout):
        return TransientError(f"{provider}: cannot connect to {url} within {timeout_s} s")
    if isinstance(exc, requests.Timeout):
        return OutcomeUnknown(f"{provider}: sent, but no answer within {timeout_s} s")
    if isinstance(exc, requests.ConnectionError) and _never_connected(exc):
        return TransientError(f"{provider}: cannot connect to {url}: {exc}")
    return OutcomeUnknown(f"{provider}: the connection failed after sending: {exc}")


def _never_connected(exc: requests.ConnectionError) -> bool:
    from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, NameResolutionError, ConnectionRefusedError))


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date), else SendGrid's ``X-RateLimit-Reset`` epoch."""
    value = headers.get("Retry-After")
    now = time.time() if now is None else now
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - now)
    reset = headers.get("X-RateLimit-Reset")
    if reset and reset.isdigit():
        return max(0.0, int(reset) - now)
    return None


def post(
    session: requests.Session,
    provider: str,
    url: str,
    *,
    json_body: Any = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
    permanent_statuses: range = range(400, 500),
) -> requests.Response:
    """POST and return a 2xx answer.

    408 and 429 are transient; a 5xx, or no answer after the request went out, is :class:`OutcomeUnknown`;
    401 and 403 are :class:`CredentialsRejected`; other 4xx permanent.
    """
    try:
        answer = session.post(url, json=json_body, data=data, headers=dict(headers or {}), timeout=timeout_s)
    except requests.RequestException as exc:
        raise network_error(provider, url, exc, timeout_s) from exc
    if answer.ok:
        return answer
    detail = http_error_detail(answer.status_code, answer.text)
    hint = retry_after_seconds(answer.headers)
    if answer.status_code in NOT_TAKEN_STATUSES:
        raise TransientError(f"{provider}: {detail}", retry_after=hint)
    if answer.status_code >= 500:
        raise OutcomeUnknown(f"{provider}: {detail}", retry_after=hint)
    if answer.status_code in (401, 403):
        raise CredentialsRejected(f"{provider} refused the credential: {detail}")
    if answer.status_code in permanent_statuses:
        raise PermanentError(f"{provider} refused the message: {detail}", detail=detail)
    raise TransientError(f"{provider}: unexpected {detail}")
