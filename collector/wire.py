"""What travels over HTTP: the request and answer shapes, the routes' call names, and reading a body as JSON.

Answer bodies follow Segment's: ``{"success": true}``; errors carry ``code`` and ``message`` (Segment's and
RudderStack's SDKs read those two) plus, here, ``errors``: one entry per refused event with its ``index``,
``messageId``, ``field``, ``code`` and ``reason``, and ``accepted``: how many events of the request were taken.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from collector.errors import Reason, Rejected

__all__ = [
    "CALLS",
    "IngestRequest",
    "IngestResponse",
    "body_write_key",
    "error_entry",
    "invalid",
    "parse_body",
    "split_calls",
]

#: URL names (``/v1/<name>``) → the call type they imply; ``batch`` carries typed events. The one-letter forms
#: are what analytics.js posts to; ``import`` is Segment's older name for batch.
CALLS: Mapping[str, str] = {
    "track": "track",
    "t": "track",
    "identify": "identify",
    "i": "identify",
    "page": "page",
    "p": "page",
    "screen": "screen",
    "s": "screen",
    "alias": "alias",
    "a": "alias",
    "group": "group",
    "g": "group",
    "batch": "batch",
    "b": "batch",
    "import": "batch",
}


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """One HTTP request, reduced to what the logic needs.

    :param call: ``"track"``, …, or ``"batch"`` (see :data:`CALLS`).
    :param body: the (decompressed) body; only its first bytes when ``too_large``.
    :param received_at_ms: arrival time, epoch ms.
    """

    call: str
    body: bytes
    authorization: str | None
    received_at_ms: int
    too_large: bool = False


@dataclass(frozen=True, slots=True)
class IngestResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(Reason.MALFORMED_JSON, "", f"the body is not UTF-8 (bad byte at offset {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise Rejected(
            Reason.MALFORMED_JSON, "", f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise Rejected(Reason.MALFORMED_JSON, "", "the body is not usable JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise Rejected(Reason.MALFORMED_JSON, "", "the body must be a JSON object")
    return doc


def _no_constants(constant: str) -> NoReturn:
    raise Rejected(Reason.MALFORMED_JSON, "", f"the body is not JSON: {constant} is not allowed")


def body_write_key(doc: Mapping[str, Any]) -> str | None:
    key = doc.get("writeKey")
    return key if isinstance(key, str) else None


def split_calls(doc: dict[str, Any], call: str) -> tuple[list[Any], Any, Mapping[str, Any] | None]:
    """The events of a request, with the batch-level ``sentAt`` and ``context`` that apply to them."""
    if call != "batch":
        return [doc], None, None
    batch = doc.get("batch")
    if not isinstance(batch, list):
        got = "missing" if batch is None else "not an array"
        raise Rejected(Reason.INVALID_FIELD, "batch", f'{got}; a batch body is {{"batch": [event, ...]}}')
    if not batch:
        raise Rejected(Reason.INVALID_FIELD, "batch", "is empty; send at least one event")
    context = doc.get("context")
    if context is not None and not isinstance(context, dict):
        raise Rejected(Reason.INVALID_FIELD, "context", "must be an object")
    return batch, doc.get("sentAt"), context


def error_entry(index: int, item: Any, error: Rejected) -> dict[str, Any]:
    message_id = item.get("messageId") if isinstance(item, dict) else None
    return {
        "index": index,
        "messageId": message_id if isinstance(message_id, str) else None,
        "field": error.field or None,
        "code": str(error.code),
        "reason": error.reason,
    }


def invalid(status: int, message: str, errors: list[dict[str, Any]], accepted: int) -> IngestResponse:
    return IngestResponse(
        status,
        {"success": False, "code": "invalid_request", "message": message, "accepted": accepted, "errors": errors},
    )
