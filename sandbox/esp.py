"""The ESP sandbox (``python -m esp_sandbox``): HTTP on ``ESP_SANDBOX_PORT``, SMTP on ``ESP_SMTP_PORT``.

Ready when ``GET /health`` answers, which the app does only once its SMTP server is up too. Its kept messages
and its STARTTLS certificate live under the sandbox's ``data/esp-sandbox/``.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from sandbox.process import ManagedProcess
from sandbox.settings import PROJECT_ROOT, SandboxSettings

__all__ = [
    "DEFAULT_ESP_SANDBOX_PORT",
    "DEFAULT_ESP_SMTP_PORT",
    "esp_sandbox_port",
    "esp_sandbox_process",
    "esp_sandbox_url",
    "esp_smtp_port",
]

DEFAULT_ESP_SANDBOX_PORT = 8025
DEFAULT_ESP_SMTP_PORT = 2525
_HEALTH_TIMEOUT_S = 2.0


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a port number; set it to an integer such as {default}.") from None
    if not 0 < port < 65536:
        raise SystemExit(f"{name}={port} is outside 1-65535; set it to a free port such as {default}.")
    return port


def esp_sandbox_port() -> int:
    """``ESP_SANDBOX_PORT``, default 8025 (the sandbox reads the same variable)."""
    return _port("ESP_SANDBOX_PORT", DEFAULT_ESP_SANDBOX_PORT)


def esp_smtp_port() -> int:
    """``ESP_SMTP_PORT``, default 2525."""
    return _port("ESP_SMTP_PORT", DEFAULT_ESP_SMTP_PORT)


def esp_sandbox_url(s: SandboxSettings) -> str:
    return f"http://{s.host}:{esp_sandbox_port()}"


def esp_sandbox_process(s: SandboxSettings) -> ManagedProcess:
    url = esp_sandbox_url(s)

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=_HEALTH_TIMEOUT_S) as answer:  # noqa: S310 - loopback
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    data = s.data_dir / "esp-sandbox"
    return ManagedProcess(
        name="esp",
        argv=[sys.executable, "-m", "esp_sandbox"],
        run_dir=s.run_dir,
        logs_dir=s.logs_dir,
        host=s.host,
        port=esp_sandbox_port(),
        ready=healthy,
        start_timeout_s=30.0,
        env={
            "ESP_SANDBOX_HOST": s.host,
            "ESP_SANDBOX_PORT": str(esp_sandbox_port()),
            "ESP_SMTP_PORT": str(esp_smtp_port()),
            "ESP_SANDBOX_STORE": str(data / "messages.jsonl"),
            "ESP_SANDBOX_TLS_DIR": str(data / "tls"),
        },
        cwd=PROJECT_ROOT,
    )
