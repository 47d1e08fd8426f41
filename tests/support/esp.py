"""The ESP sandbox in tests: start ``python -m esp_sandbox`` on free ports, and talk to its control API.

``running_esp_sandbox(home)`` starts a sandbox of the test's own (its store, certificate and log under
``home``) and stops it afterwards; ``EspSandbox`` has its addresses and small helpers for the control API and
for signed webhook calls. Builders return the smallest valid body of each provider, to be changed per test.
"""

from __future__ import annotations

import json
import socket
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from esp_sandbox.config import DEFAULT_MAILCHIMP_KEY, DEFAULT_SENDGRID_KEY, DEFAULT_WEBHOOK_SECRET
from esp_sandbox.webhook import SIGNATURE_HEADER, sign
from sandbox.process import ManagedProcess
from sandbox.settings import PROJECT_ROOT

__all__ = [
    "HTTP_TIMEOUT_S",
    "MAILCHIMP_KEY",
    "SENDGRID_KEY",
    "SMTP_PASSWORD",
    "SMTP_USER",
    "WEBHOOK_SECRET",
    "EspSandbox",
    "SharedEsp",
    "free_port",
    "mailchimp_body",
    "running_esp_sandbox",
    "sendgrid_body",
    "trigger_id",
    "webhook_body",
]

SENDGRID_KEY = DEFAULT_SENDGRID_KEY
MAILCHIMP_KEY = DEFAULT_MAILCHIMP_KEY
WEBHOOK_SECRET = DEFAULT_WEBHOOK_SECRET
SMTP_USER = "sandbox"
SMTP_PASSWORD = "sandbox"  # noqa: S105 - the sandbox's published default
HTTP_TIMEOUT_S = 30.0
_START_TIMEOUT_S = 30.0
_HEALTH_TIMEOUT_S = 2.0


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def trigger_id(prefix: str = "t") -> str:
    """A trigger id no other test uses, so tests can share one sandbox."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class EspSandbox:
    """A running sandbox: where it listens, where it keeps things, and a session to talk to it."""

    url: str
    smtp_port: int
    store_path: Path
    cert_path: Path
    log_path: Path
    session: requests.Session = field(default_factory=requests.Session)

    def messages(self, **filters: str) -> list[dict[str, Any]]:
        """``GET /_sandbox/messages`` with ``provider``, ``trigger_id`` or ``to``."""
        answer = self.session.get(f"{self.url}/_sandbox/messages", params=filters, timeout=HTTP_TIMEOUT_S)
        answer.raise_for_status()
        return list(answer.json())

    def fail_next(self, provider: str, *responses: dict[str, Any]) -> None:
        """Queue injected answers for ``provider`` (see ``esp_sandbox.faults``)."""
        answer = self.session.post(
            f"{self.url}/_sandbox/faults",
            json={"provider": provider, "responses": list(responses)},
            timeout=HTTP_TIMEOUT_S,
        )
        answer.raise_for_status()

    def clear_faults(self) -> None:
        self.session.delete(f"{self.url}/_sandbox/faults", timeout=HTTP_TIMEOUT_S).raise_for_status()

    def reset(self) -> None:
        self.session.delete(f"{self.url}/_sandbox/messages", timeout=HTTP_TIMEOUT_S).raise_for_status()

    def post_webhook(
        self, body: dict[str, Any], idempotency_key: str | None = None, secret: str = WEBHOOK_SECRET
    ) -> requests.Response:
        """A webhook call signed the way the contract says: HMAC-SHA256 over the exact bytes sent."""
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, raw)}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return self.session.post(f"{self.url}/webhook/email", data=raw, headers=headers, timeout=HTTP_TIMEOUT_S)


@contextmanager
def running_esp_sandbox(home: Path, **env: str) -> Iterator[EspSandbox]:
    """Start a sandbox with its files under ``home`` on free ports; stop it on exit (``env`` adds variables)."""
    port, smtp_port = free_port(), free_port()
    data = home / "data"
    process = ManagedProcess(
        name="esp-test",
        argv=[sys.executable, "-m", "esp_sandbox"],
        run_dir=home / "run",
        logs_dir=home / "logs",
        host="127.0.0.1",
        port=port,
        ready=lambda: _healthy(f"http://127.0.0.1:{port}"),
        start_timeout_s=_START_TIMEOUT_S,
        env={
            "ESP_SANDBOX_HOST": "127.0.0.1",
            "ESP_SANDBOX_PORT": str(port),
            "ESP_SMTP_PORT": str(smtp_port),
            "ESP_SANDBOX_STORE": str(data / "messages.jsonl"),
            "ESP_SANDBOX_TLS_DIR": str(data / "tls"),
            **env,
        },
        cwd=PROJECT_ROOT,
    )
    process.start()
    sandbox = EspSandbox(
        url=f"http://127.0.0.1:{port}",
        smtp_port=smtp_port,
        store_path=data / "messages.jsonl",
        cert_path=data / "tls" / "cert.pem",
        log_path=process.log_file,
    )
    try:
        yield sandbox
    finally:
        sandbox.session.close()
        process.stop()


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=_HEALTH_TIMEOUT_S).status_code == 200
    except requests.RequestException:
        return False


def sendgrid_body(trigger: str, to: str = "ann@example.com", **extra: Any) -> dict[str, Any]:
    """A valid Mail Send body carrying ``trigger`` in ``custom_args``, as the delivery stage sends it."""
    return {
        "personalizations": [{"to": [{"email": to}], "custom_args": {"trigger_id": trigger}}],
        "from": {"email": "shop@example.com", "name": "Example Shop"},
        "subject": "You left something in your cart",
        "content": [
            {"type": "text/plain", "value": "Your cart is waiting."},
            {"type": "text/html", "value": "<p>Your cart is waiting.</p>"},
        ],
        **extra,
    }


def mailchimp_body(trigger: str, to: str = "ann@example.com", key: str = MAILCHIMP_KEY, **extra: Any) -> dict[str, Any]:
    """A valid Mandrill ``messages/send`` body carrying ``trigger`` in ``metadata``."""
    return {
        "key": key,
        "message": {
            "to": [{"email": to, "type": "to"}],
            "from_email": "shop@example.com",
            "subject": "You left something in your cart",
            "html": "<p>Your cart is waiting.</p>",
            "text": "Your cart is waiting.",
            "metadata": {"trigger_id": trigger},
            **extra,
        },
    }


def webhook_body(trigger: str, to: str = "ann@example.com", **extra: Any) -> dict[str, Any]:
    """A valid generic-webhook body."""
    return {
        "trigger_id": trigger,
        "to": to,
        "from": "shop@example.com",
        "subject": "You left something in your cart",
        "html": "<p>Your cart is waiting.</p>",
        "text": "Your cart is waiting.",
        **extra,
    }


class SharedEsp:
    """The session's ESP sandbox (the ``esp`` fixture), through its control API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def messages(self, **filters: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/_sandbox/messages", params=filters, timeout=10)
        answer.raise_for_status()
        return list(answer.json())

    def fail_next(self, provider: str, *responses: dict[str, Any]) -> None:
        body = {"provider": provider, "responses": list(responses)}
        requests.post(f"{self.url}/_sandbox/faults", json=body, timeout=10).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.url}/_sandbox/faults", timeout=10).raise_for_status()
