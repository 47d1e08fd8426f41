"""What provider modules see of HTTP and what they answer: plain values, so each contract is tested without a server.

:class:`Incoming` is a request reduced to headers, query and body (read within the endpoint's size limit);
:class:`Answer` is the status, body and headers to send. :class:`KeySet` checks API keys in constant time.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Answer", "Incoming", "KeySet", "json_answer", "parse_json_object"]


@dataclass(frozen=True, slots=True)
class Incoming:
    """One HTTP request.

    :param headers: lower-cased names.
    :param body: the raw body; only its first ``limit + 1`` bytes when ``too_large``.
    :param received_at_ms: arrival time, epoch ms.
    """

    headers: Mapping[str, str]
    body: bytes
    received_at_ms: int
    query: Mapping[str, str] = field(default_factory=dict)
    too_large: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes = b""
    media_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON (for tests and the idempotency ledger)."""
        return json.loads(self.body) if self.body else None


def json_answer(status: int, doc: Any, headers: Mapping[str, str] | None = None) -> Answer:
    body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    return Answer(status, body, "application/json", dict(headers or {}))


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` when it is not one (each provider words that error its own way)."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


class KeySet:
    """Accepted API keys; :meth:`accepts` compares against every one, so timing does not tell which matched."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        self._keys = tuple(keys)

    def accepts(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        given = candidate.encode("utf-8", errors="surrogatepass")
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        return matched
