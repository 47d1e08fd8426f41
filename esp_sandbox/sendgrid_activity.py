"""SendGrid's Email Activity API, ``GET /v3/messages?query=...&limit=...``: the lookup for reconciliation.

After a crash the delivery stage may not know whether SendGrid took a message; it asks by the custom argument
it attached (SendGrid indexes v3 ``custom_args`` as "unique args"): ``unique_args['trigger_id']="t-123"``.

Query syntax as documented (https://www.twilio.com/docs/sendgrid/for-developers/sending-email/
getting-started-email-activity-api, reference: https://twilio.com/docs/sendgrid/api-reference/email-activity/
filter-all-messages): ``{query_type}="{query_content}"``, URL-encoded, terms joined with ``AND``, each
optionally in parentheses. The sandbox understands ``msg_id``, ``from_email``, ``subject``, ``to_email``,
``status``, ``template_id`` and ``unique_args['<name>']`` with ``=``, and ``msg_id LIKE '<X-Message-Id>%'``
(https://support.sendgrid.com/hc/en-us/articles/35804743679259); anything else is a 400 naming ``query``.

Answer: 200 ``{"messages": [{"from_email", "msg_id", "subject", "to_email", "status", "opens_count",
"clicks_count", "last_event_time"}]}``, newest first, at most ``limit`` (default 10, 1-1000). ``status`` is
SendGrid's ``processed`` for ``ESP_DELIVERED_AFTER_MS`` after acceptance, then ``delivered``. A kept email is
one row, ``to_email`` its first ``to`` address.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from esp_sandbox.records import StoredMessage
from esp_sandbox.sendgrid import SendGridError, error_answer
from esp_sandbox.wire import Answer, Incoming, json_answer

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "ActivityQueryError", "Condition", "parse_query", "search", "status_of"]

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000

_FIELDS = ("msg_id", "from_email", "subject", "to_email", "status", "template_id")
_TERM = re.compile(
    r"""\s*\(?\s*
    (?:unique_args\[\s*(?P<q>['"])(?P<arg>[^'"]+)(?P=q)\s*\]|(?P<field>[a-z_]+))
    \s*(?P<op>=|LIKE)\s*
    (?P<vq>["'])(?P<value>(?:\\.|(?!(?P=vq)).)*)(?P=vq)
    \s*\)?\s*""",
    re.VERBOSE | re.IGNORECASE,
)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)


class ActivityQueryError(ValueError):
    """A query the sandbox cannot run; the message says what it does understand."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``field op value`` term; ``field`` is ``unique_args.<name>`` for a unique argument."""

    field: str
    op: str
    value: str

    def matches(self, row: dict[str, str | None], unique_args: dict[str, object]) -> bool:
        if self.field.startswith("unique_args."):
            actual = unique_args.get(self.field.removeprefix("unique_args."))
            candidate = None if actual is None else str(actual)
        else:
            candidate = row.get(self.field)
        if candidate is None:
            return False
        if self.op == "LIKE":
            pattern = "".join(".*" if ch == "%" else re.escape(ch) for ch in self.value)
            return re.fullmatch(pattern, candidate, re.DOTALL) is not None
        return candidate == self.value


def parse_query(query: str) -> list[Condition]:
    """``unique_args['trigger_id']="t1" AND to_email="a@b.co"`` → its conditions (all must hold)."""
    if not query.strip():
        return []
    conditions = []
    for term in _AND.split(query.strip()):
        match = _TERM.fullmatch(term)
        if match is None:
            raise ActivityQueryError(
                f"cannot read {term!r}: the sandbox understands terms like unique_args['name']=\"value\", "
                f"{'/'.join(_FIELDS)}=\"value\" and msg_id LIKE 'prefix%', joined with AND"
            )
        op = match["op"].upper()
        if match["arg"] is not None:
            field = f"unique_args.{match['arg']}"
        elif match["field"].lower() in _FIELDS:
            field = match["field"].lower()
        else:
            raise ActivityQueryError(f"unknown query type {match['field']!r}; use one of {', '.join(_FIELDS)}")
        if op == "LIKE" and field != "msg_id":
            raise ActivityQueryError("the sandbox supports LIKE on msg_id only")
        conditions.append(Condition(field, op, match["value"].replace('\\"', '"').replace("\\'", "'")))
    return conditions


def status_of(message: StoredMessage, now_ms: int, delivered_after_ms: int) -> str:
    return "processed" if now_ms - message.received_at_ms < delivered_after_ms else "delivered"


def search(
    incoming: Incoming,
    messages: Callable[[], Sequence[StoredMessage]],
    delivered_after_ms: int,
) -> Answer:
    """Answer one Email Activity request (the caller has authenticated it)."""
    try:
        limit = int(incoming.query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        return error_answer(400, [SendGridError(f"limit must be an integer from 1 to {MAX_LIMIT}", "limit")])
    try:
        conditions = parse_query(incoming.query.get("query", ""))
    except ActivityQueryError as exc:
        return error_answer(400, [SendGridError(str(exc), "query")])
    now_ms = incoming.received_at_ms
    rows = []
    for message in sorted(reversed(messages()), key=lambda m: m.received_at_ms, reverse=True):
        status = status_of(message, now_ms, delivered_after_ms)
        if all(condition.matches(_fields(message, status), message.metadata) for condition in conditions):
            rows.append(_row(message, status))
            if len(rows) == limit:
                break
    return json_answer(200, {"messages": rows})


def _fields(message: StoredMessage, status: str) -> dict[str, str | None]:
    """What a query term can name."""
    return {
        "msg_id": message.provider_message_id,
        "from_email": message.from_email,
        "subject": message.subject,
        "to_email": message.to[0] if message.to else None,
        "status": status,
        "template_id": message.template_id,
    }


def _row(message: StoredMessage, status: str) -> dict[str, Any]:
    """One entry of the answer, with SendGrid's fields only."""
    last_event = datetime.fromtimestamp(message.received_at_ms / 1000, tz=UTC)
    return {
        "from_email": message.from_email,
        "msg_id": message.provider_message_id,
        "subject": message.subject,
        "to_email": message.to[0] if message.to else None,
        "status": status,
        "opens_count": 0,
        "clicks_count": 0,
        "last_event_time": last_event.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
