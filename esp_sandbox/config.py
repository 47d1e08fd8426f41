"""The ESP sandbox's settings: one frozen object, and the only place in ``esp_sandbox/`` that reads the environment.

==========================  =================================  ===================================================
variable                    default                            meaning
==========================  =================================  ===================================================
``ESP_SANDBOX_HOST``        ``127.0.0.1``                      address the HTTP and SMTP servers listen on
``ESP_SANDBOX_PORT``        ``8025``                           HTTP: provider APIs, outbox page, control API
``ESP_SMTP_PORT``           ``2525``                           SMTP (STARTTLS, then AUTH PLAIN or LOGIN)
``ESP_SENDGRID_KEYS``       ``SG.sandbox-key``                 accepted SendGrid keys, comma-separated (secret)
``ESP_MAILCHIMP_KEYS``      ``md-sandbox-key``                 accepted Mailchimp Transactional keys (secret)
``ESP_WEBHOOK_SECRET``      ``sandbox-webhook-secret``         HMAC-SHA256 key of the generic webhook (secret)
``ESP_SMTP_USER``           ``sandbox``                        the one SMTP login
``ESP_SMTP_PASSWORD``       ``sandbox``                        its password (secret)
``ESP_SANDBOX_STORE``       ``$SANDBOX_HOME/data/esp-sandbox/  the JSONL file every kept message is appended to
                            messages.jsonl``
``ESP_SANDBOX_TLS_DIR``     ``$SANDBOX_HOME/data/esp-sandbox/  where the self-signed certificate made at start is
                            tls``                              written (``cert.pem`` is what clients trust)
``ESP_DELIVERED_AFTER_MS``  ``0``                              the lookup APIs report a message as still being
                                                               processed for this long after it was accepted
==========================  =================================  ===================================================

``SANDBOX_HOME`` defaults to the project's ``.sandbox`` folder, as for the rest of the sandbox.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_MAILCHIMP_KEY",
    "DEFAULT_SENDGRID_KEY",
    "DEFAULT_WEBHOOK_SECRET",
    "EspSandboxSettings",
    "load_settings",
]

DEFAULT_SENDGRID_KEY = "SG.sandbox-key"
DEFAULT_MAILCHIMP_KEY = "md-sandbox-key"
DEFAULT_WEBHOOK_SECRET = "sandbox-webhook-secret"  # noqa: S105 - a published sandbox default, not a credential

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _sandbox_data_dir() -> Path:
    home = Path(os.environ.get("SANDBOX_HOME", _PROJECT_ROOT / ".sandbox")).resolve()
    return home / "data" / "esp-sandbox"


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class EspSandboxSettings(BaseSettings):
    """Everything the sandbox can be told; built once at start and passed down, never read again."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias=_alias("ESP_SANDBOX_HOST", "host"))
    port: int = Field(8025, ge=1, le=65535, validation_alias=_alias("ESP_SANDBOX_PORT", "port"))
    smtp_port: int = Field(2525, ge=1, le=65535, validation_alias=_alias("ESP_SMTP_PORT", "smtp_port"))
    sendgrid_keys: SecretStr = Field(
        SecretStr(DEFAULT_SENDGRID_KEY), validation_alias=_alias("ESP_SENDGRID_KEYS", "sendgrid_keys")
    )
    mailchimp_keys: SecretStr = Field(
        SecretStr(DEFAULT_MAILCHIMP_KEY), validation_alias=_alias("ESP_MAILCHIMP_KEYS", "mailchimp_keys")
    )
    webhook_secret: SecretStr = Field(
        SecretStr(DEFAULT_WEBHOOK_SECRET), validation_alias=_alias("ESP_WEBHOOK_SECRET", "webhook_secret")
    )
    smtp_user: str = Field("sandbox", min_length=1, validation_alias=_alias("ESP_SMTP_USER", "smtp_user"))
    smtp_password: SecretStr = Field(
        SecretStr("sandbox"), validation_alias=_alias("ESP_SMTP_PASSWORD", "smtp_password")
    )
    store_path: Path = Field(
        default_factory=lambda: _sandbox_data_dir() / "messages.jsonl",
        validation_alias=_alias("ESP_SANDBOX_STORE", "store_path"),
    )
    tls_dir: Path = Field(
        default_factory=lambda: _sandbox_data_dir() / "tls", validation_alias=_alias("ESP_SANDBOX_TLS_DIR", "tls_dir")
    )
    delivered_after_ms: int = Field(0, ge=0, validation_alias=_alias("ESP_DELIVERED_AFTER_MS", "delivered_after_ms"))

    @field_validator("sendgrid_keys", "mailchimp_keys", "webhook_secret", "smtp_password")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not [part for part in value.get_secret_value().split(",") if part.strip()]:
            raise ValueError("must not be empty")
        return value

    def sendgrid_key_list(self) -> list[bytes]:
        return _split(self.sendgrid_keys)

    def mailchimp_key_list(self) -> list[bytes]:
        return _split(self.mailchimp_keys)


def _split(value: SecretStr) -> list[bytes]:
    return [key.strip().encode() for key in value.get_secret_value().split(",") if key.strip()]


def load_settings(**overrides: Any) -> EspSandboxSettings:
    """Read the environment once; ``overrides`` (field names) win, for tests."""
    return EspSandboxSettings(**overrides)
