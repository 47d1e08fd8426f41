"""Mailchimp Transactional (Mandrill): ``POST /api/1.0/messages/send`` and ``/messages/search``, as Mandrill answers.

Contract (https://mailchimp.com/developer/transactional/api/messages/send-new-message/, search:
https://mailchimp.com/developer/transactional/api/messages/search-messages-by-date/):

- The API key is the ``key`` field of the JSON body. Every error is **HTTP 500** with
  ``{"status": "error", "code": <int>, "name": <str>, "message": <str>}``: a wrong key is ``code -1,
  Invalid_Key, "Invalid API key"`` (mailchimp/mailchimp-client-lib-codegen#146), a missing one ``code -1,
  ValidationError, "You must specify a key value"`` (Wylio/meteor-mandrill#12), a bad message ``code -2,
  ValidationError, "Validation error: {...}"`` whose JSON names the field, e.g. ``{"message": {"to": "..."}}``.
- A send answers 200 with one entry per recipient: ``{"email", "status", "_id", "reject_reason"}``; ``status``
  is ``sent``, ``invalid`` for a malformed address (an answer, not an error: jimrubenstein/node-mandrill#2),
  or ``rejected`` with a ``reject_reason`` when a fault says so.
- Checked: ``message`` is an object with a non-empty ``to[]`` of ``{email, name?, type?: to|cc|bcc}``, and —
  stricter than Mandrill, so the delivery stage always sends them — a valid ``from_email``, a ``subject``, and
  ``html`` or ``text``. A body over 25 MB (Mandrill's limit for a whole message) gets 413. ``metadata`` (scalar
  values, as documented: https://mailchimp.com/developer/transactional/docs/tags-metadata/) and
  ``recipient_metadata`` are merged per recipient and kept; ``trigger_id`` goes there.

Search takes ``query`` (Mandrill's Lucene-style terms: ``field:value``, ``field:"a phrase"``, bare terms that
match any indexed field including metadata values, ``*`` wildcards, joined by spaces or ``AND``; metadata
fields as ``u_<name>:value``, e.g. ``u_trigger_id:t-123``), ``date_from``/``date_to`` (default: the last 7
days), ``tags``, ``senders`` (ANY of each) and ``limit`` (default 100, at most 1000), and answers an array of
``{ts, _id, sender, template, subject, email, tags, opens, opens_detail, clicks, clicks_detail, state,
metadata}``, newest first.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from esp_sandbox.addresses import is_email
from esp_sandbox.faults import Fault
from esp_sandbox.records import StoredMessage, new_id
from esp_sandbox.wire import Answer, KeySet, json_answer

__all__ = [
    "DEFAULT_SEARCH_DAYS",
    "MAX_BODY_BYTES",
    "MAX_SEARCH_LIMIT",
    "SearchQueryError",
    "accept",
    "authenticate",
    "error_answer",
    "fault_answer",
    "matches_query",
    "missing_key",
    "search",
    "too_large",
    "validation_error",
]

MAX_BODY_BYTES = 25 * 1024 * 1024  # Mandrill's documented limit for a whole message, attachments included
MAX_SEARCH_LIMIT = 1000
DEFAULT_SEARCH_DAYS = 7
_RECIPIENT_TYPES = ("to", "cc", "bcc")
_FIELDS = ("email", "sender", "subject", "tags", "state")
_TERM = re.compile(r'\s*(?:(?P<field>[A-Za-z_][A-Za-z0-9_]*):)?(?:"(?P<phrase>[^"]*)"|(?P<word>[^\s"]+))')


class SearchQueryError(ValueError):
    """A search query the sandbox cannot run."""


def error_answer(
    code: int, name: str, message: str, status: int = 500, headers: Mapping[str, str] | None = None
) -> Answer:
    return json_answer(status, {"status": "error", "code": code, "name": name, "message": message}, headers)


def validation_error(details: Mapping[str, Any]) -> Answer:
    """Mandrill's ``ValidationError`` (code -2), its message naming the fields."""
    return error_answer(-2, "ValidationError", "Validation error: " + json.dumps(details, separators=(",", ":")))


def authenticate(doc: Mapping[str, Any] | None, keys: KeySet) -> Answer | None:
    """``None`` when the body's ``key`` is accepted, else Mandrill's error (HTTP 500, as Mandrill answers)."""
    key = doc.get("key") if doc is not None else None
    if not isinstance(key, str) or not key:
        return missing_key()
    if not keys.accepts(key):
        return error_answer(-1, "Invalid_Key", "Invalid API key")
    return None


def missing_key() -> Answer:
    """What Mandrill answers a body without a ``key`` (also one that is not a JSON object)."""
    return error_answer(-1, "ValidationError", "You must specify a key value")


def too_large() -> Answer:
    return error_answer(-2, "ValidationError", "Validation error: the request is larger than 25 MB", status=413)


def fault_answer(fault: Fault) -> Answer:
    """An injected error in Mandrill's envelope (the status is the test's choice; Mandrill itself uses 500)."""
    headers = {"Retry-After": str(math.ceil(fault.retry_after))} if fault.retry_after is not None else {}
    if fault.body is not None:
        return json_answer(fault.status, fault.body, headers)
    return error_answer(-1, "ServiceUnavailable", HTTPStatus(fault.status).phrase, fault.status, headers)


def accept(
    doc: Mapping[str, Any], received_at_ms: int, reject_reason: str | None = None
) -> tuple[Answer, list[StoredMessage]]:
    """Validate an authenticated send; on success the per-recipient answer and one record per valid recipient."""
    message = doc.get("message")
    if not isinstance(message, Mapping):
        return validation_error({"message": "Please enter an array"}), []
    problems = _problems(message)
    if problems:
        return validation_error({"message": problems}), []
    answer: list[dict[str, Any]] = []
    records: list[StoredMessage] = []
    for recipient in message["to"]:
        email = recipient["email"]
        if not is_email(email):
            answer.append({"email": email, "status": "invalid", "_id": new_id(), "reject_reason": None})
            continue
        record = _record(message, recipient, received_at_ms, reject_reason)
        records.append(record)
        answer.append(
            {"email": email, "status": record.state, "_id": record.provider_message_id, "reject_reason": reject_reason}
        )
    return json_answer(200, answer), records


def _problems(message: Mapping[str, Any]) -> dict[str, Any]:
    problems: dict[str, Any] = {}
    to = message.get("to")
    if not isinstance(to, list) or not to:
        problems["to"] = "Please enter an array of at least one recipient {email, name, type}"
    else:
        for j, recipient in enumerate(to):
            if not isinstance(recipient, Mapping) or not isinstance(recipient.get("email"), str):
                problems[f"to.{j}.email"] = "Please enter a string"
            elif recipient.get("type", "to") not in _RECIPIENT_TYPES:
                problems[f"to.{j}.type"] = "must be one of to, cc, bcc"
    if not is_email(message.get("from_email")):
        problems["from_email"] = "An email address must contain a single @"
    if not isinstance(message.get("subject"), str) or not message["subject"]:
        problems["subject"] = "Please enter a subject (the sandbox requires one)"
    if not any(isinstance(message.get(part), str) and message[part] for part in ("html", "text")):
        problems["html"] = "Please enter html or text content (the sandbox requires one)"
    metadata = message.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, Mapping) or any(isinstance(v, dict | list) for v in metadata.values())
    ):
        problems["metadata"] = "must be an object of scalar values (nested data structures are not supported)"
    headers = message.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        problems["headers"] = "Please enter an array"
    return problems


def _record(
    message: Mapping[str, Any], recipient: Mapping[str, Any], now_ms: int, reject_reason: str | None
) -> StoredMessage:
    email = recipient["email"]
    per_recipient = {}
    for entry in message.get("recipient_metadata") or []:
        if isinstance(entry, Mapping) and entry.get("rcpt") == email and isinstance(entry.get("values"), Mapping):
            per_recipient = dict(entry["values"])
    kind = recipient.get("type", "to")
    tags = message.get("tags")
    return StoredMessage(
        id=new_id(),
        provider="mailchimp",
        received_at_ms=now_ms,
        provider_message_id=new_id(),
        from_email=message["from_email"],
        from_name=message.get("from_name"),
        to=[email] if kind == "to" else [],
        cc=[email] if kind == "cc" else [],
        bcc=[email] if kind == "bcc" else [],
        subject=message["subject"],
        html=message.get("html") or None,
        text=message.get("text") or None,
        headers={str(k): str(v) for k, v in (message.get("headers") or {}).items()},
        metadata={**dict(message.get("metadata") or {}), **per_recipient},
        tags=[str(tag) for tag in tags] if isinstance(tags, list) else [],
        state="rejected" if reject_reason else "sent",
        reject_reason=reject_reason,
    )


def search(doc: Mapping[str, Any], messages: Callable[[], Sequence[StoredMessage]], now_ms: int) -> Answer:
    """Answer an authenticated ``messages/search``."""
    limit = doc.get("limit", 100)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
        return validation_error({"limit": f"must be an integer from 1 to {MAX_SEARCH_LIMIT}"})
    query = doc.get("query") or "*"
    if not isinstance(query, str):
        return validation_error({"query": "Please enter a string"})
    try:
        start_ms, end_ms = _date_range(doc.get("date_from"), doc.get("date_to"), now_ms)
        terms = _parse(query)
    except SearchQueryError as exc:
        return validation_error({"query": str(exc)})
    tags = {t for t in doc.get("tags") or [] if isinstance(t, str)}
    senders = {s.lower() for s in doc.get("senders") or [] if isinstance(s, str)}
    rows = []
    for message in sorted(reversed(messages()), key=lambda m: m.received_at_ms, reverse=True):
        if not start_ms <= message.received_at_ms <= end_ms:
            continue
        if (tags and not tags & set(message.tags)) or (senders and message.from_email.lower() not in senders):
            continue
        if _matches(terms, message):
            rows.append(_row(message))
            if len(rows) == limit:
                break
    return json_answer(200, rows)


def matches_query(query: str, message: StoredMessage) -> bool:
    """Whether ``message`` is found by ``query`` (for tests of the syntax)."""
    return _matches(_parse(query), message)


def _parse(query: str) -> list[tuple[str | None, str]]:
    terms: list[tuple[str | None, str]] = []
    position = 0
    text = query.strip()
    while position < len(text):
        match = _TERM.match(text, position)
        if match is None or match.end() == position:
            raise SearchQueryError(f"cannot read the query from {text[position:]!r}")
        position = match.end()
        value = match["phrase"] if match["phrase"] is not None else match["word"]
        if match["field"] is None and value in ("AND", "&&"):
            continue
        if match["field"] is None and value in ("OR", "NOT", "||", "!"):
            raise SearchQueryError(f"the sandbox joins terms with AND only; {value} is not supported")
        field = match["field"].lower() if match["field"] else None
        if field is not None and field not in _FIELDS and not field.startswith("u_"):
            raise SearchQueryError(f"unknown field {field!r}; use {', '.join(_FIELDS)} or u_<metadata field>")
        terms.append((field, value))
    return terms


def _values(field: str | None, message: StoredMessage) -> list[str]:
    recipients = [*message.to, *message.cc, *message.bcc]
    by_field: dict[str, list[str]] = {
        "email": recipients,
        "sender": [message.from_email],
        "subject": [message.subject, *message.subject.split()],
        "tags": message.tags,
        "state": [message.state],
    }
    if field is None:
        metadata = [str(v) for v in message.metadata.values()]
        return [value for values in by_field.values() for value in values] + metadata
    if field.startswith("u_"):
        value = message.metadata.get(field.removeprefix("u_"))
        return [] if value is None else [str(value)]
    return by_field[field]


def _matches(terms: list[tuple[str | None, str]], message: StoredMessage) -> bool:
    for field, value in terms:
        if field is None and value == "*":
            continue
        pattern = re.compile("".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in value), re.I)
        if not any(pattern.fullmatch(candidate) for candidate in _values(field, message)):
            return False
    return True


def _date_range(date_from: Any, date_to: Any, now_ms: int) -> tuple[int, int]:
    end = _date(date_to, "date_to", end_of_day=True) if date_to else now_ms
    start = (
        _date(date_from, "date_from")
        if date_from
        else now_ms - int(timedelta(days=DEFAULT_SEARCH_DAYS) / timedelta(milliseconds=1))
    )
    return start, end


def _date(value: Any, name: str, end_of_day: bool = False) -> int:
    for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            moment = datetime.strptime(str(value), form).replace(tzinfo=UTC)
        except ValueError:
            continue
        if end_of_day and form == "%Y-%m-%d":
            moment += timedelta(days=1) - timedelta(milliseconds=1)
        return int(moment.timestamp() * 1000)
    raise SearchQueryError(f"{name} must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS (UTC); got {value!r}")


def _row(message: StoredMessage) -> dict[str, Any]:
    return {
        "ts": message.received_at_ms // 1000,
        "_id": message.provider_message_id,
        "sender": message.from_email,
        "template": message.template_id,
        "subject": message.subject,
        "email": next(iter([*message.to, *message.cc, *message.bcc]), None),
        "tags": message.tags,
        "opens": 0,
        "opens_detail": [],
        "clicks": 0,
        "clicks_detail": [],
        "state": message.state,
        "metadata": message.metadata,
    }
