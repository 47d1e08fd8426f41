"""Job configs are validated at start, and each bad key is named in the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.cart_abandonment import DEFAULT_CONFIG, policy_from
from jobs.config import CartAbandonmentConfig, ConfigError, load_config, parse_duration_ms


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_shipped_config_is_valid_and_becomes_a_policy():
    cfg = load_config(DEFAULT_CONFIG, CartAbandonmentConfig)
    policy = policy_from(cfg)
    assert [r.delay_ms for r in policy.reminders] == [3_600_000, 86_400_000]
    assert cfg.event_time.max_out_of_orderness == 30_000


@pytest.mark.parametrize(
    ("text", "ms"), [("500ms", 500), ("30s", 30_000), ("15m", 900_000), ("7d", 604_800_000), (42, 42)]
)
def test_durations(text, ms):
    assert parse_duration_ms(text) == ms


def test_environment_references_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.5:19092")
    monkeypatch.delenv("REDIS_URL", raising=False)
    cfg = load_config(DEFAULT_CONFIG, CartAbandonmentConfig)
    assert cfg.kafka.bootstrap_servers == "10.0.0.5:19092"
    assert cfg.redis.url == "redis://127.0.0.1:6379/0"


def test_every_bad_key_is_named(tmp_path):
    path = _write(
        tmp_path,
        """
kafka: {bootstrap_servers: "x:1", group_id: g, starting_offset: earliest}
redis: {url: "http://nope"}
cart:
  reminders:
    - {after: 2h, template: a}
    - {after: 1h, template: b}
  cooldown: soon
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, CartAbandonmentConfig)
    message = str(info.value)
    assert "kafka.starting_offset: unknown key" in message
    assert "redis.url" in message and "not a Redis URL" in message
    assert "cart.reminders" in message and "later than the one before" in message
    assert "cart.cooldown" in message and "'soon' is not a duration" in message


def test_missing_file_and_bad_yaml_are_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="cannot read job config"):
        load_config(tmp_path / "absent.yaml", CartAbandonmentConfig)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "kafka: [unclosed"), CartAbandonmentConfig)


def test_timestamp_start_needs_a_timestamp(tmp_path):
    with pytest.raises(ConfigError, match="kafka: .*needs start_timestamp_ms"):
        load_config(DEFAULT_CONFIG, CartAbandonmentConfig, {"kafka.starting_offsets": "timestamp"})


def test_state_ttl_must_outlive_the_reminder_series():
    with pytest.raises(ConfigError, match="cart: state_ttl .* must be longer than the last reminder"):
        load_config(DEFAULT_CONFIG, CartAbandonmentConfig, {"cart.state_ttl": "2d"})
