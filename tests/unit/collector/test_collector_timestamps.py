"""Segment's clock-skew correction and the bounds on event time."""

from __future__ import annotations

import pytest

from collector.errors import Rejected
from collector.timestamps import TimeBounds, event_time, format_ms, parse_iso_ms
from tests.support.events import BEGINNING, DAY, HOUR, MINUTE, SECOND, iso

NOW = BEGINNING
BOUNDS = TimeBounds(max_future_ms=DAY, max_age_ms=730 * DAY)


def test_received_minus_sent_plus_timestamp():
    # The client's clock runs 2 days fast; the event happened 30 s before it was sent.
    when = event_time({"timestamp": iso(NOW + 2 * DAY - 30 * SECOND)}, iso(NOW + 2 * DAY), NOW, BOUNDS)

    assert when.timestamp_ms == NOW - 30 * SECOND
    assert when.original == iso(NOW + 2 * DAY - 30 * SECOND)


def test_without_sent_at_the_timestamp_is_used_as_it_is():
    assert event_time({"timestamp": iso(NOW - MINUTE)}, None, NOW, BOUNDS).timestamp_ms == NOW - MINUTE


def test_without_any_client_time_the_event_happened_when_it_arrived():
    when = event_time({}, iso(NOW), NOW, BOUNDS)

    assert (when.timestamp_ms, when.original) == (NOW, None)


def test_original_timestamp_is_the_client_time_when_timestamp_is_absent():
    # RudderStack's SDKs send originalTimestamp and sentAt, and no timestamp.
    when = event_time({"originalTimestamp": iso(NOW - HOUR)}, iso(NOW - HOUR + SECOND), NOW, BOUNDS)

    assert when.timestamp_ms == NOW - SECOND


def test_offsets_are_honoured():
    assert parse_iso_ms("timestamp", "2026-01-01T02:00:00.250+02:00") == NOW + 250


@pytest.mark.parametrize(
    ("doc", "sent_at", "field"),
    [
        ({"timestamp": iso(NOW + DAY + SECOND)}, None, "timestamp"),
        ({"timestamp": iso(NOW - 731 * DAY)}, None, "timestamp"),
        ({"timestamp": iso(NOW + 2 * DAY)}, iso(NOW), "timestamp"),
        ({"timestamp": "0001-01-01T00:00:00+14:00"}, None, "timestamp"),
        ({"timestamp": iso(NOW)}, 1767225600, "sentAt"),
        ({"timestamp": True}, None, "timestamp"),
    ],
)
def test_out_of_bounds_or_unreadable_times_name_the_field(doc, sent_at, field):
    with pytest.raises(Rejected) as caught:
        event_time(doc, sent_at, NOW, BOUNDS)

    assert caught.value.field == field and caught.value.code == "bad_timestamp"


def test_the_bounds_are_inclusive():
    assert event_time({"timestamp": iso(NOW + DAY)}, None, NOW, BOUNDS).timestamp_ms == NOW + DAY
    assert event_time({"timestamp": iso(NOW - 730 * DAY)}, None, NOW, BOUNDS).timestamp_ms == NOW - 730 * DAY


def test_timestamps_are_written_in_utc_with_milliseconds():
    assert format_ms(NOW + 5 * MINUTE + 7) == "2026-01-01T00:05:00.007Z"
