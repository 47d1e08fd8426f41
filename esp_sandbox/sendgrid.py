"""SendGrid v3 Mail Send: ``POST /v3/mail/send``, as SendGrid answers it.

Contract (https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send, errors:
https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors, envelope and status codes:
https://twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/errors):

=====  ===========================================================================================================
202    accepted: **empty body**, header ``X-Message-Id`` (one per request; each personalization is one email)
400    ``{"errors": [{"message", "field", "help"}]}``, one entry per problem, ``field`` a dotted path such as
       ``personalizations.0.to.0.email``; a body that is not a JSON object gets ``message: "Bad Request"``
401    ``Authorization: Bearer <key>`` missing (``authorization required``) or not an accepted key (``The
       provided authorization grant is invalid, expired, or revoked``)
413    a body over 30 MiB, answered by SendGrid's nginx as an HTML page, not JSON (sendgrid/sendgrid-nodejs#370)
429    ``{"errors": [{"field": null, "message": "too many requests"}]}`` with ``X-RateLimit-Limit``,
       ``X-RateLimit-Remaining: 0``, ``X-RateLimit-Reset`` (epoch s) as SendGrid documents
       (https://twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits), plus
       ``Retry-After`` when the fault sets one (only from injected faults: the sandbox has no rate limiter)
=====  ===========================================================================================================

Checked, as SendGrid does: at least one and at most 1000 personalizations, at most 1000 recipients in all,
``personalizations[].to[]`` non-empty with valid ``email``\\ s (also ``cc``/``bcc``, no address twice in one
personalization), ``from.email``, a ``subject`` at the top or in every personalization, and ``content[]`` with
``type``/``value`` (``text/plain`` first when present) — both unless a ``template_id`` is given. ``custom_args``
and ``headers`` (top level, overridden per personalization, as SendGrid merges them) are kept with each email.
"""

from __future__ import annotations

import base64
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from esp_sandbox.addresses import is_email
from esp_sandbox.faults import Fault
from esp_sandbox.records import StoredMessage, new_id
from esp_sandbox.wire import Answer, Incoming, KeySet, json_answer, parse_json_object

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PERSONALIZATIONS",
    "MAX_RECIPIENTS",
    "SendGridError",
    "accept",
    "authenticate",
    "error_answer",
    "fault_answer",
    "too_large",
    "validate",
]

MAX_BODY_BYTES = 30 * 1024 * 1024
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
_RATE_LIMIT = "10000"  # SendGrid's documented Mail Send ceiling, per second
_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#"

_FROM_REQUIRED = (
    "The from object must be provided for every email send. It is an object that requires the email parameter, "
    'but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or '
    '{"email" : "example@example.com", "name" : "Example Recipient"}.'
)
_SUBJECT_REQUIRED = (
    "The subject is required. You can get around this requirement if you use a template with a subject defined "
    "or if every personalization has a subject defined."
)
_CONTENT_REQUIRED = (
    "Unless a valid template_id is provided, the content parameter is required. There must be at least one "
    "defined content block. We typically suggest both text/plain and text/html blocks are included, but only one "
    "block is required."
)
_TO_REQUIRED = (
    "The to array is required for all personalization objects, and must have at least one email object with a "
    "valid email address."
)
_NGINX_413 = (
    b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    b"<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True, slots=True)
class SendGridError:
    """One entry of SendGrid's ``errors`` array."""

    message: str
    field: str | None = None
    help: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "field": self.field, "help": self.help}


def error_answer(status: int, errors: Sequence[SendGridError], headers: Mapping[str, str] | None = None) -> Answer:
    return json_answer(status, {"errors": [error.to_json() for error in errors]}, headers)


def authenticate(incoming: Incoming, keys: KeySet) -> Answer | None:
    """``None`` when ``Authorization: Bearer <key>`` carries an accepted key, else SendGrid's 401."""
    authorization = incoming.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if not authorization.strip():
        return error_answer(401, [SendGridError("authorization required")])
    if scheme.lower() != "bearer" or not keys.accepts(token.strip()):
        return error_answer(401, [SendGridError("The provided authorization grant is invalid, expired, or revoked")])
    return None


def too_large() -> Answer:
    return Answer(413, _NGINX_413, "text/html")


def fault_answer(fault: Fault, now_ms: int) -> Answer:
    """An injected error, in SendGrid's envelope (429 with its rate-limit headers)."""
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(math.ceil(fault.retry_after))
    if fault.status == 429:
        reset_s = math.ceil(now_ms / 1000 + (fault.retry_after if fault.retry_after is not None else 1))
        headers |= {"X-RateLimit-Limit": _RATE_LIMIT, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset_s)}
    if fault.body is not None:
        return json_answer(fault.status, fault.body, headers)
    message = "too many requests" if fault.status == 429 else HTTPStatus(fault.status).phrase.lower()
    return error_answer(fault.status, [SendGridError(message)], headers)


def accept(incoming: Incoming) -> tuple[Answer, list[StoredMessage]]:
    """Validate a Mail Send body; on success the 202 and one record per personalization."""
    doc = parse_json_object(incoming.body)
    if doc is None:
        return error_answer(400, [SendGridError("Bad Request")]), []
    errors = validate(doc)
    if errors:
        return error_answer(400, errors), []
    x_message_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
    records = [
        _record(doc, personalization, index, x_message_id, incoming.received_at_ms)
        for index, personalization in enumerate(doc["personalizations"])
    ]
    return Answer(202, headers={"X-Message-Id": x_message_id}), records


def validate(doc: Mapping[str, Any]) -> list[SendGridError]:
    """Every problem SendGrid would name in a Mail Send body, in the order of its fields."""
    has_template = isinstance(doc.get("template_id"), str) and bool(doc["template_id"])
    errors = _personalizations(doc.get("personalizations"))
    errors += _from(doc.get("from"))
    reply_to = doc.get("reply_to")
    if reply_to is not None and not (isinstance(reply_to, Mapping) and is_email(reply_to.get("email"))):
        errors.append(_error("The reply_to email does not contain a valid address.", "reply_to.email", "reply_to"))
    if not has_template:
        errors += _subject(doc)
        errors += _content(doc.get("content"))
    for name in ("custom_args", "headers"):
        if name in doc and not isinstance(doc[name], Mapping):
            errors.append(_error(f"The {name} parameter must be an object.", name, name))
    return errors


def _error(message: str, field: str | None, anchor: str) -> SendGridError:
    return SendGridError(message, field, f"{_HELP}message.{anchor}")


def _personalizations(value: Any) -> list[SendGridError]:
    if not isinstance(value, list) or not value:
        return [
            _error(
                "The personalizations field is required and must have at least one personalization.",
                "personalizations",
                "personalizations",
            )
        ]
    if len(value) > MAX_PERSONALIZATIONS:
        return [
            _error(
                f"The personalization block is limited to {MAX_PERSONALIZATIONS} personalizations per API request. "
                f"You have provided {len(value)} personalizations. Please consider splitting this into multiple "
                "requests and resending your request.",
                "personalizations",
                "personalizations",
            )
        ]
    errors: list[SendGridError] = []
    recipients = 0
    for i, personalization in enumerate(value):
        where = f"personalizations.{i}"
        if not isinstance(personalization, Mapping):
            errors.append(_error(_TO_REQUIRED, f"{where}.to", "personalizations.to"))
            continue
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            entries = personalization.get(kind)
            if kind == "to" and (not isinstance(entries, list) or not entries):
                errors.append(_error(_TO_REQUIRED, f"{where}.to", "personalizations.to"))
                continue
            if entries is None:
                continue
            if not isinstance(entries, list):
                errors.append(_error(f"The {kind} parameter must be an array.", f"{where}.{kind}", "personalizations"))
                continue
            recipients += len(entries)
            for j, entry in enumerate(entries):
                email = entry.get("email") if isinstance(entry, Mapping) else None
                if not is_email(email):
                    errors.append(_error("Does not contain a valid address.", f"{where}.{kind}.{j}.email", kind))
                elif email.lower() in seen:
                    errors.append(
                        _error(
                            "Each email address in the personalization block should be unique between to, cc, and "
                            f"bcc. We found the first duplicate instance of [{email}] in the {where}.{kind} field.",
                            where,
                            "personalizations",
                        )
                    )
                else:
                    seen.add(email.lower())
    if recipients > MAX_RECIPIENTS:
        errors.append(
            _error(
                f"There is a limit of {MAX_RECIPIENTS} total recipients (to + cc + bcc) per request.",
                "personalizations",
                "personalizations",
            )
        )
    return errors


def _from(value: Any) -> list[SendGridError]:
    if not isinstance(value, Mapping) or value.get("email") in (None, ""):
        return [_error(_FROM_REQUIRED, "from.email", "from")]
    if not is_email(value.get("email")):
        return [_error("The from email does not contain a valid address.", "from.email", "from")]
    return []


def _subject(doc: Mapping[str, Any]) -> list[SendGridError]:
    subject = doc.get("subject")
    if isinstance(subject, str) and subject:
        return []
    personalizations = doc.get("personalizations")
    if isinstance(personalizations, list) and personalizations:
        if all(isinstance(p, Mapping) and isinstance(p.get("subject"), str) and p["subject"] for p in personalizations):
            return []
    return [_error(_SUBJECT_REQUIRED, "subject", "subject")]


def _content(value: Any) -> list[SendGridError]:
    if not isinstance(value, list) or not value:
        return [_error(_CONTENT_REQUIRED, "content", "content")]
    errors: list[SendGridError] = []
    types: list[str] = []
    for i, block in enumerate(value):
        block = block if isinstance(block, Mapping) else {}
        if not isinstance(block.get("type"), str) or not block["type"]:
            errors.append(
                _error(
                    "The content type must be a string at least one character in length.",
                    f"content.{i}.type",
                    "content",
                )
            )
        else:
            types.append(block["type"].lower())
        if not isinstance(block.get("value"), str) or not block["value"]:
            errors.append(
                _error(
                    "The content value must be a string at least one character in length.",
                    f"content.{i}.value",
                    "content",
                )
            )
    if "text/plain" in types and types[0] != "text/plain":
        errors.append(
            _error(
                "If present, text/plain must be first, followed by text/html, followed by any other content.",
                "content",
                "content",
            )
        )
    return errors


def _emails(entries: Any) -> list[str]:
    return [entry["email"] for entry in entries or []]


def _strings(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _record(
    doc: Mapping[str, Any], personalization: Mapping[str, Any], index: int, x_message_id: str, now_ms: int
) -> StoredMessage:
    content = {block["type"].lower(): block["value"] for block in doc.get("content") or []}
    sender = doc["from"]
    categories = doc.get("categories")
    return StoredMessage(
        id=new_id(),
        provider="sendgrid",
        received_at_ms=now_ms,
        provider_message_id=f"{x_message_id}.{index}",
        request_id=x_message_id,
        from_email=sender["email"],
        from_name=sender.get("name"),
        to=_emails(personalization.get("to")),
        cc=_emails(personalization.get("cc")),
        bcc=_emails(personalization.get("bcc")),
        subject=str(personalization.get("subject") or doc.get("subject") or ""),
        html=content.get("text/html"),
        text=content.get("text/plain"),
        headers={
            str(k): str(v)
            for k, v in {**_strings(doc.get("headers")), **_strings(personalization.get("headers"))}.items()
        },
        metadata={**_strings(doc.get("custom_args")), **_strings(personalization.get("custom_args"))},
        tags=[str(c) for c in categories] if isinstance(categories, list) else [],
        template_id=doc.get("template_id") or None,
    )
