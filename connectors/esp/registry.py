"""Builds the configured providers, reading each secret from the environment variable the config names."""

from __future__ import annotations

import os

from connectors.esp.mailchimp import MailchimpProvider
from connectors.esp.message import EmailProvider
from connectors.esp.sendgrid import SendGridProvider
from connectors.esp.smtp import SmtpProvider
from connectors.esp.webhook import WebhookProvider
from jobs.config import ProviderSettings

__all__ = ["MissingSecret", "build_providers"]


class MissingSecret(ValueError):
    """A provider's credential is not in the environment; the message names the variable."""


def _secret(variable: str | None, provider: str, required: bool = True) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value and required:
        raise MissingSecret(f"provider {provider!r} needs its credential in the environment variable {variable}")
    return value or None


def _build(name: str, settings: ProviderSettings) -> EmailProvider:
    timeout_s = settings.timeout / 1000
    if name == "sendgrid":
        key = _secret(settings.sendgrid.api_key_env, name) or ""
        return SendGridProvider(key, settings.sendgrid.base_url, timeout_s)
    if name == "mailchimp":
        key = _secret(settings.mailchimp.api_key_env, name) or ""
        return MailchimpProvider(key, settings.mailchimp.base_url, timeout_s)
    if name == "smtp":
        smtp = settings.smtp
        return SmtpProvider(
            smtp.host,
            smtp.port,
            _secret(smtp.username_env, name, required=False),
            _secret(smtp.password_env, name, required=False),
            starttls=smtp.starttls,
            verify_tls=smtp.verify_tls,
            timeout_s=timeout_s,
        )
    secret = _secret(settings.webhook.secret_env, name) or ""
    return WebhookProvider(settings.webhook.url, secret, timeout_s)


def build_providers(settings: ProviderSettings) -> list[EmailProvider]:
    """The primary first, then the fallbacks in their configured order."""
    return [_build(name, settings) for name in [settings.primary, *settings.fallbacks]]
