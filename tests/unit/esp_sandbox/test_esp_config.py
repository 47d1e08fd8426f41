"""The settings: the documented environment names and defaults, secrets kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from esp_sandbox.config import load_settings


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("SANDBOX_HOME", str(tmp_path))
    for name in ("ESP_SANDBOX_PORT", "ESP_SMTP_PORT", "ESP_SANDBOX_STORE", "ESP_SANDBOX_TLS_DIR"):
        monkeypatch.delenv(name, raising=False)

    settings = load_settings()

    assert (settings.host, settings.port, settings.smtp_port) == ("127.0.0.1", 8025, 2525)
    assert settings.sendgrid_key_list() == [b"SG.sandbox-key"]
    assert settings.mailchimp_key_list() == [b"md-sandbox-key"]
    assert settings.webhook_secret.get_secret_value() == "sandbox-webhook-secret"
    assert (settings.smtp_user, settings.smtp_password.get_secret_value()) == ("sandbox", "sandbox")
    assert settings.store_path == tmp_path.resolve() / "data" / "esp-sandbox" / "messages.jsonl"
    assert settings.tls_dir == tmp_path.resolve() / "data" / "esp-sandbox" / "tls"
    assert settings.delivered_after_ms == 0
    assert "sandbox-webhook-secret" not in repr(settings)


def test_the_environment_names(monkeypatch):
    env = {
        "ESP_SANDBOX_PORT": "38025",
        "ESP_SMTP_PORT": "32525",
        "ESP_SENDGRID_KEYS": "SG.a, SG.b",
        "ESP_MAILCHIMP_KEYS": "md-a",
        "ESP_WEBHOOK_SECRET": "w",
        "ESP_SMTP_USER": "u",
        "ESP_SMTP_PASSWORD": "p",
        "ESP_SANDBOX_STORE": "/tmp/x/m.jsonl",
        "ESP_DELIVERED_AFTER_MS": "1500",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = load_settings()

    assert (settings.port, settings.smtp_port, settings.delivered_after_ms) == (38025, 32525, 1500)
    assert settings.sendgrid_key_list() == [b"SG.a", b"SG.b"] and settings.mailchimp_key_list() == [b"md-a"]
    assert settings.webhook_secret.get_secret_value() == "w" and settings.smtp_user == "u"
    assert settings.store_path == Path("/tmp/x/m.jsonl")


@pytest.mark.parametrize(("name", "value"), [("ESP_SANDBOX_PORT", "0"), ("ESP_SENDGRID_KEYS", " , ")])
def test_bad_values_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        load_settings()


def test_the_settings_are_frozen():
    with pytest.raises(ValidationError):
        load_settings().port = 1  # type: ignore[misc]
