"""Parse and validate Segment-spec click events, and build dead-letter records for the ones that fail.

:func:`parse_event` runs once per record on the hot path (tens of thousands per second), so it does one
``json.loads`` and a handful of type checks, and nothing else. Every rejection is an :class:`InvalidEvent`
that names the offending field, so the dead-letter topic tells a producer exactly what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

__all__ = [
    "EVENT_TYPES",
    "HEARTBEAT_TYPE",
    "MERGED_FIELD",
    "ClickEvent",
    "InvalidEvent",
    "dead_letter_record",
    "load_json_object",
    "parse_event",
]

#: Segment-spec call types; anything else is rejected.
EVENT_TYPES: frozenset[str] = frozenset({"alias", "group", "identify", "page", "screen", "track"})

#: The collector's watermark heartbeat on every partition (README, "Collector"): event time moves on in a
#: silent shop. Parsed to a :class:`ClickEvent` with an empty ``person_id``, which the jobs read for their
#: watermark and then drop.
HEARTBEAT_TYPE = "watermark"
#: Set by the cart job's login step on the events it moves to the person (never by a shop).
MERGED_FIELD = "cartpulseMerged"
_EXPECTED_TYPES = ", ".join(sorted(EVENT_TYPES))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# Timestamps outside [2000, 2100] (UTC) are a producer bug (unset clock, seconds-vs-ms mix-up), not real events.
_EARLIEST_MS = (datetime(2000, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_MS
_LATEST_MS = (datetime(2101, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_MS  # exclusive
_MAX_SHOWN = 80
_JSON_TYPE_NAMES = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}


class InvalidEvent(ValueError):
    """A record that cannot be processed; ``field`` names the culprit so the producer knows what to fix.

    :param field: dotted path of the bad field, e.g. ``"properties.price"``; ``""`` when the payload as a
        whole is unusable (not UTF-8, not JSON, not an object).
    :param reason: what is wrong, phrased to be read after the field name.
    """

    def __init__(self, field: str, reason: str) -> None:
        # Both go to ValueError so the exception pickles and unpickles with the same arguments.
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"field {self.field!r}: {self.reason}" if self.field else self.reason

    @classmethod
    def expected(cls, field: str, what: str, value: Any) -> InvalidEvent:
        """The common "wrong type or range" case, worded the same way everywhere: ``must be <what>, got <value>``."""
        return cls(field, f"must be {what}, got {_describe(value)}")


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """A validated event, reduced to what the stateful steps need.

    :param person_id: the collector's ``personId`` when it is a non-blank string, else ``userId`` when it is,
        else ``anonymousId``; the key for state.
    :param name: the track ``event`` or the page/screen ``name``; ``""`` when there is none.
    :param event_time_ms: the event's ``timestamp`` in epoch milliseconds (UTC).
    :param properties: the event's ``properties`` object, not copied; treat it as read-only.
    :param anonymous_id: the event's ``anonymousId`` (the browser or device), if any.
    :param previous_id: an ``alias`` call's ``previousId``, the identity it links to ``person_id``.
    :param merged: ``(login time ms, browser)`` on a cart event the cart job moved from a browser's anonymous
        cart to the person it logged in as (:mod:`udfs.identity`); read from :data:`MERGED_FIELD`.
    """

    message_id: str
    person_id: str
    type: str
    name: str
    event_time_ms: int
    properties: Mapping[str, Any]
    anonymous_id: str | None = None
    previous_id: str | None = None
    merged: tuple[int, str] | None = None

    @property
    def device_id(self) -> str:
        """The identity the event was made under before any login: where an anonymous cart lives."""
        return self.previous_id or self.anonymous_id or self.person_id

    @property
    def links_to(self) -> str | None:
        """The person an ``identify`` or ``alias`` call joins :attr:`device_id` to; ``None`` for any other call."""
        if self.type not in ("identify", "alias") or self.person_id == self.device_id:
            return None
        return self.person_id


def parse_event(raw: bytes | str) -> ClickEvent:
    """Validate one Segment-spec record and reduce it to a :class:`ClickEvent`.

    :param raw: the Kafka record value, UTF-8 JSON as bytes, or already-decoded text.
    :raises InvalidEvent: naming the first field that is missing or malformed.
    """
    doc = load_json_object(raw)

    event_type = doc.get("type")
    if event_type == HEARTBEAT_TYPE:
        return ClickEvent(
            _required_string(doc, "messageId"), "", HEARTBEAT_TYPE, "", _event_time_ms(doc.get("timestamp")), {}
        )
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        problem = "missing" if event_type is None else f"{_describe(event_type)} is not a known event type"
        raise InvalidEvent("type", f"{problem}; expected one of {_EXPECTED_TYPES}")

    return ClickEvent(
        message_id=_required_string(doc, "messageId"),
        person_id=_person_id(doc),
        type=event_type,
        name=_name(doc, event_type),
        event_time_ms=_event_time_ms(doc.get("timestamp")),
        properties=_properties(doc.get("properties")),
        anonymous_id=_identity(doc, "anonymousId"),
        previous_id=_identity(doc, "previousId") if event_type == "alias" else None,
        merged=_merged(doc.get(MERGED_FIELD)),
    )


def dead_letter_record(raw: bytes | str, error: Exception, stage: str) -> bytes:
    """Wrap a record that failed at ``stage`` for the dead-letter topic.

    Always returns valid JSON, even for binary garbage: undecodable bytes become U+FFFD and the output is
    ASCII-only, so lone surrogates or odd characters in ``raw`` can never make the encoding fail.

    :param raw: the record exactly as it was received.
    :param error: why it failed; :class:`InvalidEvent` also contributes its ``field``.
    :param stage: which step rejected it, e.g. ``"parse"`` or ``"cart"``.
    """
    payload = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", errors="replace")
    record = {
        "stage": stage,
        "error": str(error) or type(error).__name__,
        "field": (error.field or None) if isinstance(error, InvalidEvent) else None,
        "payload": payload,
        "failed_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    return json.dumps(record, separators=(",", ":")).encode("ascii")


def load_json_object(raw: bytes | str, error: type[InvalidEvent] = InvalidEvent) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes or text; anything else raises ``error`` saying what is wrong with it."""
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(
                "", f"payload is not valid UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
            ) from None
    try:
        doc = json.loads(text, parse_constant=lambda constant: _reject_constant(constant, error))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise error("", f"payload is not valid JSON: {exc.msg} at {where}") from None
    except RecursionError:
        raise error("", "payload is not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise error("", f"payload must be a JSON object, got {_json_type(doc)}")
    return doc


def _reject_constant(constant: str, error: type[InvalidEvent]) -> NoReturn:
    """NaN and Infinity are not JSON; Python accepts them by default, and they would poison prices."""
    raise error("", f"payload is not valid JSON: {constant} is not allowed")


def _required_string(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if value is None:
        raise InvalidEvent(key, "missing")
    if not isinstance(value, str):
        raise InvalidEvent.expected(key, "a string", value)
    if not value or value.isspace():
        raise InvalidEvent(key, "must not be empty")
    return value


def _person_id(doc: Mapping[str, Any]) -> str:
    # Both are checked even when userId is usable: a numeric id anywhere means the producer needs fixing.
    user_id = _identity(doc, "userId")
    anonymous_id = _identity(doc, "anonymousId")
    # The collector adds personId, its resolved identity (an anonymousId linked by identify/alias to a userId).
    resolved = doc.get("personId")
    person_id = (resolved if isinstance(resolved, str) and resolved.strip() else None) or user_id or anonymous_id
    if person_id is None:
        raise InvalidEvent("userId", "missing; an event needs a non-empty userId or anonymousId")
    return person_id


def _identity(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(
            key, f"must be a string, got {_describe(value)}; numeric ids are not accepted, send them as strings"
        )
    return None if not value or value.isspace() else value


def _name(doc: Mapping[str, Any], event_type: str) -> str:
    if event_type == "track":
        return _required_string(doc, "event")
    if event_type in ("page", "screen"):
        name = doc.get("name")
        if name is None:
            return ""
        if not isinstance(name, str):
            raise InvalidEvent.expected("name", "a string", name)
        return name
    return ""


def _event_time_ms(timestamp: Any) -> int:
    if timestamp is None:
        raise InvalidEvent("timestamp", "missing")
    if not isinstance(timestamp, str):
        raise InvalidEvent.expected("timestamp", "an ISO-8601 string", timestamp)
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        raise InvalidEvent("timestamp", f"not an ISO-8601 date-time ({_show(timestamp)})") from None
    if moment.tzinfo is None:
        raise InvalidEvent(
            "timestamp", f"has no time zone ({_show(timestamp)}); it needs an offset such as +02:00 or Z"
        )
    event_time_ms = (moment - _EPOCH) // _ONE_MS
    if not _EARLIEST_MS <= event_time_ms < _LATEST_MS:
        raise InvalidEvent("timestamp", f"year must be between 2000 and 2100 ({_show(timestamp)})")
    return event_time_ms


def _merged(value: Any) -> tuple[int, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not _is_int(value.get("at_ms")) or not isinstance(value.get("from"), str):
        raise InvalidEvent.expected(MERGED_FIELD, 'an object {"at_ms": <int>, "from": <string>}', value)
    return value["at_ms"], value["from"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _properties(properties: Any) -> Mapping[str, Any]:
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise InvalidEvent("properties", f"must be an object, got {_json_type(properties)}")
    return properties


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    """Type plus a short rendering for scalars, so messages stay small even for huge payloads."""
    if isinstance(value, (dict, list)):
        return _json_type(value)
    return f"{_json_type(value)} {_show(value)}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
