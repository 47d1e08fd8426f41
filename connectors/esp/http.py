"""The one place HTTP providers turn requests' exceptions and status codes into ours."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import requests

from connectors.errors import PermanentError, TransientError
from connectors.esp.message import DEFAULT_HTTP_TIMEOUT_S, http_error_detail

__all__ = ["post", "retry_after_seconds"]


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
    """POST and return a 2xx answer; 408, 429 and 5xx (and network trouble) are transient, other 4xx permanent."""
    try:
        answer = session.post(url, json=json_body, data=data, headers=dict(headers or {}), timeout=timeout_s)
    except requests.Timeout as exc:
        raise TransientError(f"{provider}: no answer within {timeout_s} s") from exc
    except requests.ConnectionError as exc:
        raise TransientError(f"{provider}: cannot connect to {url}: {exc}") from exc
    if answer.ok:
        return answer
    detail = http_error_detail(answer.status_code, answer.text)
    if answer.status_code in (408, 429) or answer.status_code >= 500:
        raise TransientError(f"{provider}: {detail}", retry_after=retry_after_seconds(answer.headers))
    if answer.status_code in permanent_statuses:
        raise PermanentError(f"{provider} refused the message: {detail}", detail=detail)
    raise TransientError(f"{provider}: unexpected {detail}")
