"""The generic webhook, ``POST /webhook/email``: cartpulse's own contract for sites that deliver mail themselves.

Request::

    POST /webhook/email
    Content-Type: application/json
    X-Cartpulse-Signature: sha256=<hex of HMAC-SHA256(shared secret, raw request body)>
    Idempotency-Key: <1-255 visible ASCII characters, unique per email; the delivery stage uses the trigger_id>

    {"trigger_id": "t-123", "to": "ann@example.com", "from": "shop@example.com", "subject": "Your cart",
     "html": "<p>...</p>", "text": "...", "headers": {"List-Unsubscribe": "<...>"}, "metadata": {"variant": "b"}}

``trigger_id``, ``to``, ``from`` (plain addresses), ``subject`` and one of ``html``/``text`` are required;
``headers`` (string values) and ``metadata`` (scalar values) are optional. The signature covers the exact bytes
sent, so sign the body after serializing it; compare it in constant time.

=====  ======================================================================================================
202    ``{"id": "<message id>", "trigger_id": "t-123", "status": "accepted"}``: the email is kept
202    the same again with ``Idempotent-Replayed: true``: a repeat of an accepted request (same key, same
       body); nothing new is kept. Only accepted requests are remembered, so a retry after an error is served
400    ``{"error": "invalid_request", "field": ..., "message": ...}``: no ``Idempotency-Key``, or a bad body
401    ``{"error": "invalid_signature", "message": ...}``: the signature is missing or does not match
413    ``{"error": "too_large", ...}``: a body over 1 MiB
422    ``{"error": "idempotency_key_reused", ...}``: the key was used before for a different body
=====  ======================================================================================================

Injected faults answer ``{"error": "unavailable", "message": ...}`` with their status (and ``Retry-After``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from esp_sandbox.addresses import is_email
from esp_sandbox.faults import Fault
from esp_sandbox.records import StoredMessage, new_id
from esp_sandbox.wire import Answer, Incoming, json_answer, parse_json_object

__all__ = [
    "MAX_BODY_BYTES",
    "SIGNATURE_HEADER",
    "IdempotencyLedger",
    "accept",
    "authenticate",
    "fault_answer",
    "sign",
    "too_large",
]

MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_HEADER = "X-Cartpulse-Signature"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Cartpulse-Signature`` value of ``body``: ``sha256=<hex>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class IdempotencyLedger:
    """Idempotency keys of accepted requests → the body's digest and the answer given; rebuilt from the store."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, Answer]] = {}

    def rebuild(self, messages: Iterable[StoredMessage]) -> None:
        self._seen = {}
        for message in messages:
            if message.provider == "webhook" and message.idempotency_key and message.request_digest:
                self.remember(message.idempotency_key, message.request_digest, _accepted(message))

    def remember(self, key: str, digest: str, answer: Answer) -> None:
        self._seen[key] = (digest, answer)

    def lookup(self, key: str) -> tuple[str, Answer] | None:
        return self._seen.get(key)

    def clear(self) -> None:
        self._seen = {}


def authenticate(incoming: Incoming, secret: bytes) -> Answer | None:
    """``None`` when the signature matches the raw body, else 401."""
    given = incoming.headers.get(SIGNATURE_HEADER.lower(), "")
    if not given:
        return _error(401, "invalid_signature", f"the {SIGNATURE_HEADER} header is missing; send sha256=<hex>")
    if not hmac.compare_digest(given.strip().encode(), sign(secret, incoming.body).encode()):
        return _error(401, "invalid_signature", "the signature does not match HMAC-SHA256 of the body")
    return None


def too_large() -> Answer:
    return _error(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")


def fault_answer(fault: Fault) -> Answer:
    headers = {"Retry-After": str(math.ceil(fault.retry_after))} if fault.retry_after is not None else {}
    if fault.body is not None:
        return json_answer(fault.status, fault.body, headers)
    return json_answer(fault.status, {"error": "unavailable", "message": HTTPStatus(fault.status).phrase}, headers)


def accept(incoming: Incoming, ledger: IdempotencyLedger) -> tuple[Answer, list[StoredMessage]]:
    """Honour the idempotency key, validate, and on success the 202 and the record (also remembered)."""
    key = incoming.headers.get("idempotency-key", "").strip()
    if not _KEY.match(key):
        return _invalid("Idempotency-Key", "the header is required: 1-255 visible ASCII characters"), []
    digest = hashlib.sha256(incoming.body).hexdigest()
    seen = ledger.lookup(key)
    if seen is not None:
        first_digest, first_answer = seen
        if first_digest != digest:
            return _error(422, "idempotency_key_reused", f"Idempotency-Key {key!r} was used for another body"), []
        return Answer(
            first_answer.status,
            first_answer.body,
            first_answer.media_type,
            {**first_answer.headers, "Idempotent-Replayed": "true"},
        ), []
    doc = parse_json_object(incoming.body)
    if doc is None:
        return _invalid("", "the body must be a JSON object"), []
    problem = _problem(doc)
    if problem is not None:
        return _invalid(*problem), []
    message_id = new_id()
    record = StoredMessage(
        id=message_id,
        provider="webhook",
        received_at_ms=incoming.received_at_ms,
        provider_message_id=message_id,
        from_email=doc["from"],
        to=[doc["to"]],
        subject=doc["subject"],
        html=doc.get("html") or None,
        text=doc.get("text") or None,
        headers={str(k): str(v) for k, v in (doc.get("headers") or {}).items()},
        metadata={**dict(doc.get("metadata") or {}), "trigger_id": doc["trigger_id"]},
        request_id=key,
        idempotency_key=key,
        request_digest=digest,
    )
    answer = _accepted(record)
    ledger.remember(key, digest, answer)
    return answer, [record]


def _accepted(record: StoredMessage) -> Answer:
    return json_answer(202, {"id": record.provider_message_id, "trigger_id": record.trigger_id, "status": "accepted"})


def _problem(doc: Mapping[str, Any]) -> tuple[str, str] | None:
    if not isinstance(doc.get("trigger_id"), str) or not doc["trigger_id"].strip():
        return "trigger_id", "is required: a non-empty string"
    for name in ("to", "from"):
        if not is_email(doc.get(name)):
            return name, "must be a plain email address such as ann@example.com"
    if not isinstance(doc.get("subject"), str) or not doc["subject"]:
        return "subject", "is required: a non-empty string"
    for part in ("html", "text"):
        if doc.get(part) is not None and not isinstance(doc[part], str):
            return part, "must be a string"
    if not doc.get("html") and not doc.get("text"):
        return "html", "html or text is required"
    headers = doc.get("headers")
    if headers is not None and (
        not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values())
    ):
        return "headers", "must be an object of string values"
    metadata = doc.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, Mapping) or any(isinstance(v, dict | list) for v in metadata.values())
    ):
        return "metadata", "must be an object of scalar values"
    return None


def _invalid(field: str, message: str) -> Answer:
    return json_answer(400, {"error": "invalid_request", "field": field or None, "message": message})


def _error(status: int, error: str, message: str) -> Answer:
    return json_answer(status, {"error": error, "message": message})
