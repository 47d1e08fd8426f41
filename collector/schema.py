"""One Segment call, checked and normalized into the record the collector puts on Kafka.

What is checked (each rejection names the field): the call ``type``; ``messageId`` (a string, at most 256
characters; generated when absent, as Segment does); an identity (``userId`` or ``anonymousId``, strings, or
integers which are turned into strings, as Segment does); ``event`` for track, ``previousId`` for alias,
``groupId`` for group; ``context``/``properties``/``traits``/``integrations`` are objects; the timestamps
(:mod:`collector.timestamps`). The E-commerce properties are never a reason to refuse (Segment accepts them):
how they deviate from the spec (:mod:`collector.ecommerce`) is marked on the record instead.

What is added: ``receivedAt`` (server time), ``timestamp`` (corrected), ``originalTimestamp`` (the client's),
``personId`` (the resolved identity, filled in by the handler), ``messageId`` when absent; a batch's
top-level ``context`` is merged under each event's own; ``context.cartpulse.spec_deviations``, the first
:data:`MAX_MARKED` deviations as ``[{"field": "properties.order_id", "reason": "missing"}]``, only when there
are some (the collector owns that key: a client's own is dropped). ``writeKey`` is removed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collector.ecommerce import Deviation, spec_deviations
from collector.errors import Reason, Rejected
from collector.timestamps import TimeBounds, event_time, format_ms

__all__ = ["CALL_TYPES", "MAX_ID_LENGTH", "MAX_MARKED", "CollectedEvent", "normalize"]

#: Segment's call types (the Flink job's parser accepts the same set).
CALL_TYPES: frozenset[str] = frozenset({"alias", "group", "identify", "page", "screen", "track"})
#: Longest ``messageId``, ``userId``, ``anonymousId`` or event name accepted; ids become Redis keys.
MAX_ID_LENGTH = 256
#: Most deviations marked on one record: a 32 KB Cart Viewed of empty products could deviate thousands of times,
#: and its marks must not push the record past the broker's size limit (the metric still counts each kind).
MAX_MARKED = 50

_OBJECT_FIELDS = ("context", "properties", "traits", "integrations")
_EXPECTED_TYPES = ", ".join(sorted(CALL_TYPES))


@dataclass(frozen=True, slots=True)
class CollectedEvent:
    """A checked event, ready for identity resolution and Kafka.

    :param index: position in the request (0 for a single call), for per-event answers.
    :param client_message_id: ``True`` when the client sent the ``messageId``; only those are deduplicated.
    :param link: ``(from_id, user_id)`` when the call ties an id to a user: ``identify`` links its
        ``anonymousId``, ``alias`` its ``previousId``.
    :param doc: the normalized record, without ``personId``.
    :param deviations: how a track call's E-commerce properties deviate from the spec (all of them, even past
        :data:`MAX_MARKED`), for the metric.
    :param event_time_ms: the corrected ``timestamp``, epoch ms, for the heartbeats' event clock
        (:mod:`collector.event_clock`).
    :param received_at_ms: ``receivedAt``, epoch ms, likewise.
    """

    index: int
    message_id: str
    client_message_id: bool
    type: str
    user_id: str | None
    anonymous_id: str | None
    link: tuple[str, str] | None
    doc: dict[str, Any]
    deviations: tuple[Deviation, ...] = ()
    event_time_ms: int | None = None
    received_at_ms: int | None = None


def normalize(
    raw: Any,
    *,
    index: int,
    call_type: str | None,
    received_at_ms: int,
    bounds: TimeBounds,
    batch_sent_at: Any = None,
    batch_context: Mapping[str, Any] | None = None,
) -> CollectedEvent:
    """Check one call and build its record.

    :param raw: the parsed JSON of the call (one element of ``batch``, or a whole single-call body).
    :param call_type: the type the endpoint implies (``/v1/track`` → ``"track"``); ``None`` for batch items,
        which must carry their own ``type``.
    :param received_at_ms: when the request arrived, epoch ms; becomes ``receivedAt``.
    :raises Rejected: naming the first bad field.
    """
    if not isinstance(raw, dict):
        raise Rejected(Reason.INVALID_FIELD, "", f"an event must be a JSON object, got {_json_type(raw)}")
    kind = call_type or _call_type(raw.get("type"))
    message_id, client_message_id = _message_id(raw.get("messageId"))
    user_id = _identity(raw, "userId")
    anonymous_id = _identity(raw, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise Rejected(Reason.MISSING_IDENTITY, "userId", "missing; every call needs a userId or an anonymousId")
    for name in _OBJECT_FIELDS:
        value = raw.get(name)
        if value is not None and not isinstance(value, dict):
            raise Rejected(Reason.INVALID_FIELD, name, f"must be an object, got {_json_type(value)}")
    link = _call_fields(raw, kind, user_id, anonymous_id)
    sent_at = raw.get("sentAt") if raw.get("sentAt") is not None else batch_sent_at
    when = event_time(raw, sent_at, received_at_ms, bounds)
    deviations = _deviations(raw) if kind == "track" else ()

    doc = {key: value for key, value in raw.items() if key != "writeKey"}
    doc["type"] = kind
    doc["messageId"] = message_id
    if user_id is not None:
        doc["userId"] = user_id
    if anonymous_id is not None:
        doc["anonymousId"] = anonymous_id
    if batch_context:
        doc["context"] = {**batch_context, **(raw.get("context") or {})}
    _mark(doc, deviations)
    doc["timestamp"] = format_ms(when.timestamp_ms)
    if when.original is not None:
        doc["originalTimestamp"] = when.original
    if sent_at is not None:
        doc["sentAt"] = sent_at
    doc["receivedAt"] = format_ms(received_at_ms)
    return CollectedEvent(
        index=index,
        message_id=message_id,
        client_message_id=client_message_id,
        type=kind,
        user_id=user_id,
        anonymous_id=anonymous_id,
        link=link,
        doc=doc,
        deviations=deviations,
        event_time_ms=when.timestamp_ms,
        received_at_ms=received_at_ms,
    )


def _call_type(value: Any) -> str:
    if value is None:
        raise Rejected(Reason.INVALID_FIELD, "type", f"missing; expected one of {_EXPECTED_TYPES}")
    if not isinstance(value, str) or value not in CALL_TYPES:
        raise Rejected(
            Reason.INVALID_FIELD, "type", f"{_describe(value)} is not a call type; expected one of {_EXPECTED_TYPES}"
        )
    return value


def _message_id(value: Any) -> tuple[str, bool]:
    if value is None:
        return f"cartpulse-{uuid.uuid4()}", False
    return _text("messageId", value), True


def _identity(doc: Mapping[str, Any], key: str) -> str | None:
    """A non-blank string, or an integer turned into one; blank counts as absent."""
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise Rejected(Reason.INVALID_FIELD, key, f"must be a string, got {_describe(value)}")
    if not value or value.isspace():
        return None
    if len(value) > MAX_ID_LENGTH:
        raise Rejected(Reason.INVALID_FIELD, key, f"is {len(value)} characters long; at most {MAX_ID_LENGTH}")
    return value


def _call_fields(
    doc: Mapping[str, Any], kind: str, user_id: str | None, anonymous_id: str | None
) -> tuple[str, str] | None:
    """Check what each call type requires; returns the identity link the call makes, if any."""
    if kind == "track":
        _text("event", doc.get("event"))
    elif kind in ("page", "screen"):
        page_name = doc.get("name")
        if page_name is not None and not isinstance(page_name, str):
            raise Rejected(Reason.INVALID_FIELD, "name", f"must be a string, got {_describe(page_name)}")
    elif kind == "group":
        _id_field(doc, "groupId")
    elif kind == "alias":
        previous_id = _id_field(doc, "previousId")
        if user_id is None:
            raise Rejected(Reason.MISSING_IDENTITY, "userId", "missing; an alias call links previousId to a userId")
        return (previous_id, user_id) if previous_id != user_id else None
    elif kind == "identify" and user_id is not None and anonymous_id is not None and anonymous_id != user_id:
        return (anonymous_id, user_id)
    return None


def _deviations(doc: Mapping[str, Any]) -> tuple[Deviation, ...]:
    properties = doc.get("properties")
    return spec_deviations(doc["event"], properties if isinstance(properties, Mapping) else {})


def _mark(doc: dict[str, Any], deviations: tuple[Deviation, ...]) -> None:
    """Put the deviations under ``context.cartpulse``, replacing any a client sent, so the mark is always ours."""
    context = doc.get("context") or {}
    ours = context.get("cartpulse")
    ours = dict(ours) if isinstance(ours, dict) else {}
    sent = ours.pop("spec_deviations", None) is not None
    if not deviations and not sent:
        return
    if deviations:
        ours["spec_deviations"] = [deviation.to_dict() for deviation in deviations[:MAX_MARKED]]
    doc["context"] = {**context, "cartpulse": ours}


def _id_field(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(key, value)


def _text(key: str, value: Any) -> str:
    if value is None:
        raise Rejected(Reason.INVALID_FIELD, key, "missing")
    if not isinstance(value, str):
        raise Rejected(Reason.INVALID_FIELD, key, f"must be a string, got {_describe(value)}")
    if not value or value.isspace():
        raise Rejected(Reason.INVALID_FIELD, key, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise Rejected(Reason.INVALID_FIELD, key, f"is {len(value)} characters long; at most {MAX_ID_LENGTH}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return _json_type(value)
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    return f"{_json_type(value)} {text if len(text) <= 40 else text[:37] + '...'}"
