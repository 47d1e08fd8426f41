"""Parsing and validating Segment-spec events, and the dead-letter records for the ones that fail."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import udfs.events
from tests.support.events import BEGINNING, MINUTE, as_json, event, page_viewed, product_added
from udfs.events import ClickEvent, InvalidEvent, dead_letter_record, parse_event


def _broken(**changes: Any) -> bytes:
    """A valid Product Added with some keys replaced (``None``) or removed (``...``)."""
    doc = product_added("ann", BEGINNING)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key)
        else:
            doc[key] = value
    return as_json(doc)


def test_a_track_event_becomes_a_click_event():
    doc = product_added("ann", BEGINNING + 5 * MINUTE, product_id="shoe", price=80.0)

    parsed = parse_event(as_json(doc))

    assert parsed == ClickEvent(
        message_id=doc["messageId"],
        person_id="ann",
        type="track",
        name="Product Added",
        event_time_ms=BEGINNING + 5 * MINUTE,
        properties=doc["properties"],
        anonymous_id="anon-ann",
    )


def test_text_input_is_accepted_as_well_as_bytes():
    doc = page_viewed("ann", BEGINNING, name="Home")

    assert parse_event(json.dumps(doc)) == parse_event(as_json(doc))


@pytest.mark.parametrize("user_id", [None, "", "   "])
def test_person_falls_back_to_the_anonymous_id(user_id):
    parsed = parse_event(_broken(userId=user_id, anonymousId="anon-7"))

    assert parsed.person_id == "anon-7"


def test_the_collectors_person_id_wins_over_user_and_anonymous_ids():
    parsed = parse_event(_broken(userId=None, anonymousId="anon-7", personId="ann"))

    assert parsed.person_id == "ann"


@pytest.mark.parametrize("person_id", [None, "", "   ", 7])
def test_an_unusable_person_id_falls_back_to_the_user_id(person_id):
    parsed = parse_event(_broken(personId=person_id))

    assert parsed.person_id == "ann"


def test_timestamps_with_an_offset_are_converted_to_utc():
    parsed = parse_event(_broken(timestamp="2026-01-01T02:05:00.250+02:00"))

    assert parsed.event_time_ms == BEGINNING + 5 * MINUTE + 250


def test_page_events_take_their_name_and_other_calls_have_none():
    assert parse_event(as_json(page_viewed("ann", BEGINNING, name="Cart"))).name == "Cart"
    assert parse_event(as_json(event("page", "ann", BEGINNING))).name == ""
    assert parse_event(as_json(event("identify", "ann", BEGINNING))).name == ""


def test_missing_or_null_properties_become_an_empty_mapping():
    assert parse_event(_broken(properties=...)).properties == {}
    assert parse_event(_broken(properties=None)).properties == {}


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        (b"\xff\xfe{}", "", "not valid UTF-8"),
        (b"{not json", "", "not valid JSON"),
        (b'{"price": NaN}', "", "NaN is not allowed"),
        (b"[1, 2]", "", "must be a JSON object, got array"),
        (_broken(type=...), "type", "missing"),
        (_broken(type="click"), "type", "'click' is not a known event type"),
        (_broken(type=["track"]), "type", "array is not a known event type"),
        (_broken(messageId=...), "messageId", "missing"),
        (_broken(messageId=""), "messageId", "must not be empty"),
        (_broken(messageId=42), "messageId", "must be a string, got number 42"),
        (_broken(userId=42), "userId", "numeric ids are not accepted"),
        (_broken(userId=None, anonymousId=7), "anonymousId", "numeric ids are not accepted"),
        (_broken(userId=None, anonymousId=None), "userId", "needs a non-empty userId or anonymousId"),
        (_broken(timestamp=...), "timestamp", "missing"),
        (_broken(timestamp=BEGINNING), "timestamp", "must be an ISO-8601 string, got number"),
        (_broken(timestamp="2026-01-01T00:00:00"), "timestamp", "needs an offset such as +02:00 or Z"),
        (_broken(timestamp="1970-01-01T00:00:00Z"), "timestamp", "year must be between 2000 and 2100"),
        (_broken(timestamp="2101-01-01T00:00:00Z"), "timestamp", "year must be between 2000 and 2100"),
        (_broken(event=...), "event", "missing"),
        (_broken(event=""), "event", "must not be empty"),
        (_broken(properties=[1]), "properties", "must be an object, got array"),
        (as_json({**page_viewed("ann", BEGINNING), "name": 5}), "name", "must be a string"),
    ],
)
def test_each_rejection_names_its_field(raw, field, says):
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)

    assert caught.value.field == field
    assert says in str(caught.value)


def test_a_bad_timestamp_is_described_plainly():
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_broken(timestamp="yesterday"))

    assert str(caught.value) == "field 'timestamp': not an ISO-8601 date-time ('yesterday')"


def test_huge_bad_values_are_shortened_in_the_message():
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_broken(timestamp="x" * 10_000))

    assert len(str(caught.value)) < 200


def test_invalid_event_is_a_value_error_that_survives_pickling():
    error = InvalidEvent("properties.price", "must be a number")

    copy = pickle.loads(pickle.dumps(error))

    assert isinstance(copy, ValueError)
    assert (copy.field, copy.reason, str(copy)) == (error.field, error.reason, str(error))


def test_click_events_survive_pickling():
    parsed = parse_event(as_json(product_added("ann", BEGINNING)))

    assert pickle.loads(pickle.dumps(parsed)) == parsed


def test_dead_letter_record_of_binary_garbage_is_json():
    garbage = bytes(range(256))
    with pytest.raises(InvalidEvent) as caught:
        parse_event(garbage)

    record = json.loads(dead_letter_record(garbage, caught.value, "parse"))

    assert record["stage"] == "parse"
    assert record["field"] is None
    assert "not valid UTF-8" in record["error"]
    assert record["payload"] == garbage.decode("utf-8", errors="replace")


def test_dead_letter_record_carries_the_field_and_a_utc_failure_time():
    raw = _broken(timestamp="yesterday")
    before = datetime.now(UTC)

    record = json.loads(dead_letter_record(raw, InvalidEvent("timestamp", "not a date"), "cart"))

    assert record["field"] == "timestamp"
    assert record["error"] == "field 'timestamp': not a date"
    assert record["payload"] == raw.decode()
    failed_at = datetime.fromisoformat(record["failed_at"])
    assert failed_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= failed_at <= datetime.now(UTC)


def test_dead_letter_record_accepts_any_exception_and_odd_text():
    raw = '{"name": "caf\u00e9 \ud800"}'  # a lone surrogate cannot be encoded as UTF-8

    record = json.loads(dead_letter_record(raw, KeyError("price"), "cart"))

    assert record["field"] is None
    assert record["error"] == "'price'"
    assert record["payload"] == raw


def test_all_covers_every_public_class_and_function():
    public = {
        name
        for name, value in vars(udfs.events).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == "udfs.events"
    }

    assert set(udfs.events.__all__) >= public
    assert all(hasattr(udfs.events, name) for name in udfs.events.__all__)


def test_the_device_is_the_anonymous_id_and_identify_links_it_to_the_user():
    tracked = parse_event(as_json(product_added("ann", BEGINNING)))
    identify = parse_event(as_json(event("identify", "ann", BEGINNING)))

    assert (tracked.device_id, tracked.links_to) == ("anon-ann", None)
    assert (identify.device_id, identify.links_to) == ("anon-ann", "ann")


def test_an_alias_links_its_previous_id():
    doc = {**event("alias", "ann", BEGINNING), "previousId": "guest-7"}
    del doc["anonymousId"]

    alias = parse_event(as_json(doc))

    assert (alias.device_id, alias.links_to) == ("guest-7", "ann")


def test_an_identify_without_a_user_links_nothing():
    doc = event("identify", "ann", BEGINNING)
    del doc["userId"]

    identify = parse_event(as_json(doc))

    assert (identify.person_id, identify.device_id, identify.links_to) == ("anon-ann", "anon-ann", None)


def test_a_numeric_previous_id_is_rejected():
    doc = {**event("alias", "ann", BEGINNING), "previousId": 7}

    with pytest.raises(InvalidEvent, match="previousId"):
        parse_event(as_json(doc))
