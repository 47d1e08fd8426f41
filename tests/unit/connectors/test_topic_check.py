"""When an output topic's configs would let the broker delete a replay's records before they are read."""

from __future__ import annotations

from connectors.topic_check import event_time_warning, retention_warning


def test_event_time_stamps_under_time_retention_are_warned_about_naming_the_fix():
    warning = retention_warning("email.triggers", {"message.timestamp.type": "CreateTime", "retention.ms": "604800000"})
    assert warning is not None
    assert "email.triggers" in warning and "168 h" in warning and "LogAppendTime" in warning


def test_broker_defaults_are_create_time_and_seven_days():
    assert retention_warning("t", {}) is not None


def test_append_time_or_unlimited_retention_keeps_replayed_records():
    assert retention_warning("t", {"message.timestamp.type": "LogAppendTime", "retention.ms": "604800000"}) is None
    assert retention_warning("t", {"message.timestamp.type": "CreateTime", "retention.ms": "-1"}) is None


def test_an_events_topic_stamped_on_write_loses_event_time():
    warning = event_time_warning(
        "clickstream.events", {"message.timestamp.type": "LogAppendTime", "retention.ms": "-1"}
    )
    assert warning is not None and "LogAppendTime" in warning and "late" in warning


def test_an_events_topic_under_time_retention_would_delete_a_replay():
    warning = event_time_warning(
        "clickstream.events", {"message.timestamp.type": "CreateTime", "retention.ms": "604800000"}
    )
    assert warning is not None and "168 h" in warning and "retention.bytes" in warning
    assert event_time_warning("t", {}) is not None  # the broker's defaults: CreateTime, 7 days


def test_an_events_topic_kept_by_size_with_event_times_is_fine():
    assert event_time_warning("t", {"message.timestamp.type": "CreateTime", "retention.ms": "-1"}) is None
