"""The collector's settings come from the environment, with the sandbox's defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from collector.config import DEFAULT_WRITE_KEY, load_settings, parse_duration_ms

_VARIABLES = (
    "COLLECTOR_PORT",
    "COLLECTOR_WRITE_KEYS",
    "KAFKA_BOOTSTRAP_SERVERS",
    "REDIS_URL",
    "COLLECTOR_DEDUP_WINDOW",
    "COLLECTOR_KAFKA_COMPRESSION",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_sandbox():
    s = load_settings()

    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.write_key_list() == [DEFAULT_WRITE_KEY.encode()] == [b"demo-write-key"]
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.redis_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert (s.events_topic, s.dlq_topic) == ("clickstream.events", "clickstream.dlq")
    assert s.dedup_window_ms == 86_400_000 and s.kafka_compression == "lz4"
    assert (s.max_event_bytes, s.max_batch_bytes) == (32 * 1024, 500 * 1024)


def test_the_environment_is_read_with_the_shared_names(monkeypatch):
    monkeypatch.setenv("COLLECTOR_PORT", "18080")
    monkeypatch.setenv("COLLECTOR_WRITE_KEYS", "one, two")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    monkeypatch.setenv("REDIS_URL", "redis://:secret@127.0.0.1:16379/0")
    monkeypatch.setenv("COLLECTOR_DEDUP_WINDOW", "1h")

    s = load_settings()

    assert s.port == 18080 and s.write_key_list() == [b"one", b"two"]
    assert s.kafka_bootstrap_servers == "127.0.0.1:19092" and s.dedup_window_ms == 3_600_000
    assert "secret" not in repr(s) and "one" not in repr(s)


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        load_settings().port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [("COLLECTOR_DEDUP_WINDOW", "soon"), ("COLLECTOR_KAFKA_COMPRESSION", "snappy"), ("COLLECTOR_WRITE_KEYS", " , ")],
)
def test_bad_values_are_named(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError) as caught:
        load_settings()

    assert name in str(caught.value) or name.removeprefix("COLLECTOR_").lower() in str(caught.value)


@pytest.mark.parametrize(
    ("text", "ms"), [("500ms", 500), ("30s", 30_000), ("15m", 900_000), ("7d", 604_800_000), (5, 5)]
)
def test_durations(text, ms):
    assert parse_duration_ms(text) == ms
