"""When an output topic's configs would let the broker delete a replay's records before they are read."""

from __future__ import annotations

from connectors.topic_check import retention_warning


def test_event_time_stamps_under_time_retention_are_warned_about_naming_the_fix():
    warning = retention_warning("email.triggers", {"message.timestamp.type": "CreateTime", "retention.ms": "604800000"})
    assert warning is not None
    assert "email.triggers" in warning and "168 h" in warning and "LogAppendTime" in warning


def test_broker_defaults_are_create_time_and_seven_days():
    assert retention_warning("t", {}) is not None


def test_append_time_or_unlimited_retention_keeps_replayed_records():
    assert retention_warning("t", {"message.timestamp.type": "LogAppendTime", "retention.ms": "604800000"}) is None
    assert retention_warning("t", {"message.timestamp.type": "CreateTime", "retention.ms": "-1"}) is None
