"""The outbox pages: plain view models (unit-tested) and the Jinja2 renderer that only formats them.

Everything shown came from a sender the sandbox does not trust, so templates autoescape everything and use
``StrictUndefined``; an email's HTML is shown only inside ``<iframe sandbox srcdoc="...">`` (escaped into the
attribute, no scripts, no same-origin), and the pages carry a Content-Security-Policy that allows no scripts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from esp_sandbox.records import PROVIDERS, StoredMessage

__all__ = ["PAGE_HEADERS", "OutboxRenderer", "list_view", "message_view"]

#: Headers of every outbox page: no scripts anywhere, images and inline styles (emails use them) allowed.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def list_view(messages: Sequence[StoredMessage], provider: str | None = None) -> dict[str, Any]:
    """The outbox list: newest first, optionally one provider's."""
    shown = [m for m in messages if provider is None or m.provider == provider]
    return {
        "provider": provider,
        "providers": list(PROVIDERS),
        "total": len(messages),
        "rows": [
            {
                "id": m.id,
                "received_at": m.received_at,
                "provider": m.provider,
                "to": ", ".join([*m.to, *m.cc, *m.bcc]),
                "subject": m.subject,
                "trigger_id": m.trigger_id or "",
                "variant": m.variant or "",
                "state": m.state,
            }
            for m in reversed(shown)
        ],
    }


def message_view(message: StoredMessage) -> dict[str, Any]:
    """One message: its envelope, its headers and metadata, its HTML (for the iframe) and text parts."""
    envelope = [
        ("From", f"{message.from_name} <{message.from_email}>" if message.from_name else message.from_email),
        ("To", ", ".join(message.to)),
        ("Cc", ", ".join(message.cc)),
        ("Bcc", ", ".join(message.bcc)),
        ("Subject", message.subject),
        ("Received", message.received_at),
        ("Provider", message.provider),
        ("Provider message id", message.provider_message_id),
        ("Trigger id", message.trigger_id or ""),
        ("Variant", message.variant or ""),
        ("State", message.state + (f" ({message.reject_reason})" if message.reject_reason else "")),
        ("Template", message.template_id or ""),
        ("Tags", ", ".join(message.tags)),
    ]
    return {
        "id": message.id,
        "subject": message.subject,
        "envelope": [(name, value) for name, value in envelope if value],
        "headers": sorted(message.headers.items(), key=lambda item: item[0].lower()),
        "metadata": sorted((key, json.dumps(value)) for key, value in message.metadata.items()),
        "html": message.html,
        "text": message.text,
        "record": json.dumps(message.to_json(), indent=2, sort_keys=True),
    }


class OutboxRenderer:
    """Renders ``templates/*.html`` with autoescaping on and undefined names as errors."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("esp_sandbox", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, template: str, **context: Any) -> str:
        return self._env.get_template(template).render(**context)
