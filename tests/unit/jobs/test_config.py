"""Job configs are validated at start, and each bad key is named in the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.clickstream import DEFAULT_CONFIG, policy_from
from jobs.config import ClickstreamConfig, ConfigError, load_config, parse_duration_ms
from udfs.cart import Reminder
from udfs.intent import BrowsePolicy, IntentWeights


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_shipped_config_is_valid_and_becomes_a_policy():
    cfg = load_config(DEFAULT_CONFIG, ClickstreamConfig)
    policy = policy_from(cfg)
    assert policy.cart.reminders == (Reminder(3_600_000, "cart_reminder_1"), Reminder(86_400_000, "cart_reminder_2"))
    assert (policy.cart.cooldown_ms, policy.cart.max_reminders, policy.cart.dedup_window) == (604_800_000, 2, 64)
    assert policy.weights == IntentWeights()  # the shipped weights are the documented defaults
    assert policy.browse == BrowsePolicy()
    assert policy.session_gap_ms == 30 * 60_000
    assert policy.cart_state_ttl_ms == 30 * 86_400_000
    assert cfg.event_time.max_out_of_orderness == 30_000
    assert (cfg.profile_writes.batch, cfg.profile_writes.linger) == (100, 10)
    assert cfg.job_name == "clickstream"


def test_each_section_becomes_the_policy_its_udf_takes():
    cfg = load_config(
        DEFAULT_CONFIG,
        ClickstreamConfig,
        {
            "weights.cart_add": 7.5,
            "weights.half_life": "1h",
            "browse.high_intent_threshold": None,
            "browse.min_product_views": 5,
            "session.gap": "10m",
            "cart.max_reminders": 1,
        },
    )
    policy = policy_from(cfg)
    assert policy.cart == cfg.cart.to_policy()
    assert policy.cart.max_reminders == 1
    assert policy.weights == cfg.weights.to_weights()
    assert (policy.weights.cart_add, policy.weights.half_life_ms) == (7.5, 3_600_000)
    assert policy.browse == cfg.browse.to_policy()
    assert (policy.browse.high_intent_threshold, policy.browse.min_product_views) == (None, 5)
    assert policy.session_gap_ms == 600_000


@pytest.mark.parametrize(
    ("text", "ms"), [("500ms", 500), ("30s", 30_000), ("15m", 900_000), ("7d", 604_800_000), (42, 42)]
)
def test_durations(text, ms):
    assert parse_duration_ms(text) == ms


def test_environment_references_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.5:19092")
    monkeypatch.delenv("REDIS_URL", raising=False)
    cfg = load_config(DEFAULT_CONFIG, ClickstreamConfig)
    assert cfg.kafka.bootstrap_servers == "10.0.0.5:19092"
    assert cfg.redis.url == "redis://127.0.0.1:6379/0"


def test_every_bad_key_is_named(tmp_path):
    path = _write(
        tmp_path,
        """
kafka: {bootstrap_servers: "x:1", group_id: g, starting_offset: earliest}
redis: {url: "http://nope"}
profile_writes: {batch: 0, linger: 0ms}
cart:
  reminders:
    - {after: 2h, template: a}
    - {after: 1h, template: b}
  cooldown: soon
weights: {scale: 0}
session: {gap: often}
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, ClickstreamConfig)
    message = str(info.value)
    assert "kafka.starting_offset: unknown key" in message
    assert "redis.url" in message and "not a Redis URL" in message
    assert "cart.reminders" in message and "later than the one before" in message
    assert "cart.cooldown" in message and "'soon' is not a duration" in message
    assert "profile_writes.batch" in message and "profile_writes.linger" in message
    assert "weights.scale" in message
    assert "session.gap" in message and "'often' is not a duration" in message


def test_missing_file_and_bad_yaml_are_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="cannot read job config"):
        load_config(tmp_path / "absent.yaml", ClickstreamConfig)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "kafka: [unclosed"), ClickstreamConfig)


def test_timestamp_start_needs_a_timestamp(tmp_path):
    with pytest.raises(ConfigError, match="kafka: .*needs start_timestamp_ms"):
        load_config(DEFAULT_CONFIG, ClickstreamConfig, {"kafka.starting_offsets": "timestamp"})


def test_state_ttl_must_outlive_the_reminder_series():
    with pytest.raises(ConfigError, match="cart: state_ttl .* must be longer than the last reminder"):
        load_config(DEFAULT_CONFIG, ClickstreamConfig, {"cart.state_ttl": "2d"})
