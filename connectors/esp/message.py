"""What every provider sends and answers, whatever its wire format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["DEFAULT_HTTP_TIMEOUT_S", "EmailMessage", "EmailProvider", "SendResult", "http_error_detail"]

#: connect and read timeout of every provider call (seconds); a slow provider is retried, not waited on
DEFAULT_HTTP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class EmailMessage:
    """One email to one person; ``trigger_id`` travels as the provider's metadata and idempotency key."""

    trigger_id: str
    to_email: str
    from_email: str
    subject: str
    html: str
    text: str
    to_name: str | None = None
    from_name: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message; ``message_id`` is its id for it, if it gives one."""

    provider: str
    message_id: str | None
    detail: str | None = None


class EmailProvider(Protocol):
    name: str

    def send(self, message: EmailMessage) -> SendResult:
        """Hand the message over; raises TransientError or PermanentError."""
        ...

    def find_sent(self, trigger_id: str) -> SendResult | None:
        """Whether the provider already accepted a message for ``trigger_id`` (after a crash).

        Raises ``NotImplementedError`` where the provider offers no way to ask (SMTP).
        """
        ...

    def close(self) -> None: ...


def http_error_detail(status: int, body: str, limit: int = 500) -> str:
    return f"HTTP {status}: {body[:limit]}"
