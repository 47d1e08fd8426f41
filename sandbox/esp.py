"""The ESP sandbox (``python -m esp_sandbox``): HTTP on ``ESP_SANDBOX_PORT``, SMTP on ``ESP_SMTP_PORT``.

Ready when ``GET /health`` answers, which the app does only once its SMTP server is up too. Its kept messages
and its STARTTLS certificate live under the sandbox's ``data/esp-sandbox/``.
"""

from __future__ import annotations

import sys

from sandbox.process import ManagedProcess, http_ok
from sandbox.settings import PROJECT_ROOT, SandboxSettings, env_port

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


def esp_sandbox_port() -> int:
    """``ESP_SANDBOX_PORT``, default 8025 (the sandbox reads the same variable)."""
    return env_port("ESP_SANDBOX_PORT", DEFAULT_ESP_SANDBOX_PORT)


def esp_smtp_port() -> int:
    """``ESP_SMTP_PORT``, default 2525."""
    return env_port("ESP_SMTP_PORT", DEFAULT_ESP_SMTP_PORT)


def esp_sandbox_url(s: SandboxSettings) -> str:
    return f"http://{s.host}:{esp_sandbox_port()}"


def esp_sandbox_process(s: SandboxSettings) -> ManagedProcess:
    url = esp_sandbox_url(s)

    data = s.data_dir / "esp-sandbox"
    return ManagedProcess(
        name="esp",
        argv=[sys.executable, "-m", "esp_sandbox"],
        run_dir=s.run_dir,
        logs_dir=s.logs_dir,
        host=s.host,
        port=esp_sandbox_port(),
        ready=http_ok(f"{url}/health"),
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
