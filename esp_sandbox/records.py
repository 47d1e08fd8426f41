"""One kept email, whichever door it came in by, and how it is written to and read from the JSONL file.

Each provider keeps mail at its own grain, and so does the sandbox: one record per SendGrid personalization
(one email to its to/cc/bcc), one per Mailchimp recipient (Mandrill gives each recipient its own ``_id``), one
per webhook call and one per SMTP transaction. ``metadata`` holds what the sender attached for its own use
(SendGrid ``custom_args``, Mandrill ``metadata``, the webhook's ``trigger_id``, SMTP ``X-Cartpulse-*`` headers);
``trigger_id`` and ``variant`` are lifted out of it because the delivery stage and the outbox look for them.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

__all__ = ["PROVIDERS", "StoredMessage", "iso_ms", "new_id"]

#: The doors mail comes in by; the ``provider`` of every record.
PROVIDERS = ("sendgrid", "mailchimp", "webhook", "smtp")


def new_id() -> str:
    """32 hex characters: the sandbox's own id of a kept message (also Mandrill's ``_id`` format)."""
    return uuid.uuid4().hex


def iso_ms(t_ms: int) -> str:
    """Epoch ms as ``2026-01-01T00:05:00.000Z``."""
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class StoredMessage:
    """An email the sandbox accepted.

    :param id: the sandbox's id (the outbox page is ``/outbox/<id>``).
    :param provider: one of :data:`PROVIDERS`.
    :param received_at_ms: when it was accepted, epoch ms.
    :param provider_message_id: the id the provider's API reports for it (SendGrid's activity ``msg_id``,
        Mandrill's ``_id``, the webhook's ``id``, the id in SMTP's ``250`` reply).
    :param request_id: what one request shares: SendGrid's ``X-Message-Id``, the webhook's ``Idempotency-Key``.
    :param state: ``sent``, or ``rejected`` when a fault told Mailchimp to reject the recipient.
    :param request_digest: SHA-256 of the request body, to tell a replay from a reuse of an idempotency key.
    """

    id: str
    provider: str
    received_at_ms: int
    provider_message_id: str
    from_email: str
    to: list[str]
    subject: str
    from_name: str | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    html: str | None = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    template_id: str | None = None
    request_id: str | None = None
    state: str = "sent"
    reject_reason: str | None = None
    idempotency_key: str | None = None
    request_digest: str | None = None

    @property
    def trigger_id(self) -> str | None:
        value = self.metadata.get("trigger_id")
        return None if value is None else str(value)

    @property
    def variant(self) -> str | None:
        value = self.metadata.get("variant")
        return None if value is None else str(value)

    @property
    def received_at(self) -> str:
        return iso_ms(self.received_at_ms)

    def to_json(self) -> dict[str, Any]:
        """The record as the JSONL file and ``GET /_sandbox/messages`` show it (with the lifted fields)."""
        return {
            **asdict(self),
            "received_at": self.received_at,
            "trigger_id": self.trigger_id,
            "variant": self.variant,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StoredMessage:
        """Read back what :meth:`to_json` wrote; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in doc.items() if key in known})
