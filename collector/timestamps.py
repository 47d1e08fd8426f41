"""Event time as Segment computes it: the client's clock, corrected for its skew against ours.

A device's clock can be hours or years off. Segment's fix: the client stamps ``timestamp`` when the event
happens and ``sentAt`` when it sends it; both come from the same (wrong) clock, so their difference is
right, and ``receivedAt − sentAt + timestamp`` puts the event on the server's clock. The client's value is
kept as ``originalTimestamp``. Without ``sentAt`` there is nothing to correct with and ``timestamp`` is used
as it is; without any client time, ``receivedAt`` is the event time.

Bounds (configurable, ``COLLECTOR_MAX_FUTURE`` and ``COLLECTOR_MAX_AGE``): after correction an event more
than 24 hours ahead of the server or older than 730 days is rejected, naming the field. The future bound
only catches clients that send no ``sentAt`` (with it, correction cancels the skew); two years keeps
historical imports possible while refusing unset clocks (1970) and seconds-for-milliseconds mix-ups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.errors import Reason, Rejected

__all__ = ["EventTime", "TimeBounds", "event_time", "format_ms", "parse_iso_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_MAX_SHOWN = 60
_HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """How far from the server's clock a corrected event time may be, in milliseconds."""

    max_future_ms: int = 24 * _HOUR_MS
    max_age_ms: int = 730 * 24 * _HOUR_MS


@dataclass(frozen=True, slots=True)
class EventTime:
    """The outcome of the correction.

    :param timestamp_ms: the corrected event time, epoch ms (UTC).
    :param original: the client's own time string (``originalTimestamp``), or ``None`` if it sent none.
    """

    timestamp_ms: int
    original: str | None


def parse_iso_ms(field: str, value: Any) -> int:
    """An ISO-8601 date-time with a time zone, as epoch milliseconds; anything else is rejected by name."""
    if not isinstance(value, str):
        kind = "a number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__
        raise Rejected(Reason.BAD_TIMESTAMP, field, f"must be an ISO-8601 date-time string, got {kind}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Rejected(Reason.BAD_TIMESTAMP, field, f"is not an ISO-8601 date-time ({_show(value)})") from None
    if moment.tzinfo is None:
        raise Rejected(
            Reason.BAD_TIMESTAMP, field, f"has no time zone ({_show(value)}); add an offset such as Z or +02:00"
        )
    try:
        return (moment - _EPOCH) // _ONE_MS
    except OverflowError:
        raise Rejected(Reason.BAD_TIMESTAMP, field, f"is out of range ({_show(value)})") from None


def event_time(doc: dict[str, Any], sent_at: Any, received_at_ms: int, bounds: TimeBounds) -> EventTime:
    """Apply the clock-skew correction to one event and check the bounds.

    :param doc: the event; its ``timestamp`` (else ``originalTimestamp``, as RudderStack sends) is the client time.
    :param sent_at: the event's ``sentAt``, or the batch's when the event has none; ``None`` skips the correction.
    :param received_at_ms: when the collector received the request, epoch ms.
    :raises Rejected: naming the field whose value is unreadable or out of bounds.
    """
    field = "timestamp" if doc.get("timestamp") is not None else "originalTimestamp"
    raw = doc.get(field)
    if raw is None:
        return EventTime(timestamp_ms=received_at_ms, original=None)
    client_ms = parse_iso_ms(field, raw)
    corrected = client_ms
    if sent_at is not None:
        corrected = received_at_ms - parse_iso_ms("sentAt", sent_at) + client_ms
    if corrected > received_at_ms + bounds.max_future_ms:
        ahead = (corrected - received_at_ms) / _HOUR_MS
        raise Rejected(
            Reason.BAD_TIMESTAMP,
            field,
            f"is {ahead:.1f} h in the future after clock-skew correction ({_show(raw)}); "
            f"at most {bounds.max_future_ms / _HOUR_MS:g} h ahead is accepted",
        )
    if corrected < received_at_ms - bounds.max_age_ms:
        days = (received_at_ms - corrected) / (24 * _HOUR_MS)
        raise Rejected(
            Reason.BAD_TIMESTAMP,
            field,
            f"is {days:.0f} days old after clock-skew correction ({_show(raw)}); "
            f"at most {bounds.max_age_ms / (24 * _HOUR_MS):g} days is accepted",
        )
    return EventTime(timestamp_ms=corrected, original=raw)


def format_ms(epoch_ms: int) -> str:
    """Epoch ms as the collector writes every timestamp: ``2026-01-01T00:05:00.000Z``."""
    return (_EPOCH + epoch_ms * _ONE_MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _show(value: str) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
