"""An SMTP transaction's message, parsed with the standard library's ``email`` package into a kept record.

The envelope says who gets the mail (``RCPT TO``); the headers say how it is shown: ``to``/``cc`` come from the
``To``/``Cc`` headers, and envelope recipients named in neither are the ``bcc``. The sender's own metadata is
read where each provider's SMTP relay reads it — SendGrid's ``X-SMTPAPI`` ``unique_args``, Mandrill's
``X-MC-Metadata`` — and from ``X-Cartpulse-<Key>`` headers, which win: ``X-Cartpulse-Trigger-Id`` is
``trigger_id``, ``X-Cartpulse-variant`` is ``variant`` (header names are case-insensitive, so keys are lower
case, hyphens as underscores).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from esp_sandbox.records import StoredMessage, new_id

__all__ = ["METADATA_PREFIX", "TRIGGER_HEADER", "parse_message"]

log = logging.getLogger(__name__)

METADATA_PREFIX = "X-Cartpulse-"
TRIGGER_HEADER = "X-Cartpulse-Trigger-Id"


def parse_message(raw: bytes, mail_from: str, rcpt_tos: Sequence[str], received_at_ms: int) -> StoredMessage:
    """The record of one accepted SMTP message (``raw`` is the DATA as received)."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage
    from_name, from_email = _first_address(message, "From")
    to = _addresses(message, "To")
    cc = _addresses(message, "Cc")
    named = {address.lower() for address in [*to, *cc]}
    bcc = [rcpt for rcpt in rcpt_tos if rcpt.lower() not in named]
    if not to and not cc:
        to, bcc = list(rcpt_tos), []
    message_id = new_id()
    return StoredMessage(
        id=message_id,
        provider="smtp",
        received_at_ms=received_at_ms,
        provider_message_id=message_id,
        request_id=_header(message, "Message-ID"),
        from_email=from_email or mail_from,
        from_name=from_name,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=_header(message, "Subject") or "",
        html=_part(message, "html"),
        text=_part(message, "plain"),
        headers=_headers(message),
        metadata=_metadata(message),
    )


def _header(message: EmailMessage, name: str) -> str | None:
    try:
        value = message.get(name)
    except (ValueError, IndexError) as exc:  # a header the policy cannot parse
        log.warning("unreadable %s header: %s", name, exc)
        return None
    return None if value is None else str(value)


def _addresses(message: EmailMessage, name: str) -> list[str]:
    try:
        header = message.get(name)
        return [address.addr_spec for address in header.addresses] if header is not None else []
    except (AttributeError, ValueError, IndexError):
        return []


def _first_address(message: EmailMessage, name: str) -> tuple[str | None, str | None]:
    try:
        header = message.get(name)
        if header is not None and header.addresses:
            address = header.addresses[0]
            return address.display_name or None, address.addr_spec
    except (AttributeError, ValueError, IndexError):
        pass
    return None, None


def _part(message: EmailMessage, subtype: str) -> str | None:
    body = message.get_body(preferencelist=(subtype,))
    if body is None:
        return None
    try:
        content = body.get_content()
    except (LookupError, ValueError) as exc:  # an unknown charset or a broken transfer encoding
        log.warning("unreadable text/%s part: %s", subtype, exc)
        return None
    return content if isinstance(content, str) else None


def _headers(message: EmailMessage) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in message.raw_items():
        text = " ".join(str(value).split())
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return headers


def _metadata(message: EmailMessage) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    smtpapi = _json_header(message, "X-SMTPAPI")
    if isinstance(smtpapi.get("unique_args"), dict):
        metadata.update(smtpapi["unique_args"])
    metadata.update(_json_header(message, "X-MC-Metadata"))
    for name, value in message.raw_items():
        if name.lower().startswith(METADATA_PREFIX.lower()) and len(name) > len(METADATA_PREFIX):
            key = name[len(METADATA_PREFIX) :].lower().replace("-", "_")
            metadata[key] = " ".join(str(value).split())
    return metadata


def _json_header(message: EmailMessage, name: str) -> dict[str, Any]:
    value = _header(message, name)
    if not value:
        return {}
    try:
        doc = json.loads(value)
    except ValueError:
        log.warning("the %s header is not JSON; its metadata is ignored", name)
        return {}
    return doc if isinstance(doc, dict) else {}
