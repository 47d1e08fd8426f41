"""Where the sandbox keeps its files and which ports it uses; every port can be overridden by environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PROJECT_ROOT", "SANDBOX_CREDENTIALS", "SandboxSettings", "env_port", "load_settings"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# The sandbox's own credentials: the ESP sandbox accepts these, and the unsubscribe link is signed with the
# last one. A real deployment sets its own values in the environment (README, "Delivery").
SANDBOX_CREDENTIALS = {
    "SENDGRID_API_KEY": "SG.sandbox-key",
    "MAILCHIMP_API_KEY": "md-sandbox-key",
    "WEBHOOK_SECRET": "sandbox-webhook-secret",
    "SMTP_USERNAME": "sandbox",
    "SMTP_PASSWORD": "sandbox",
    "UNSUBSCRIBE_SECRET": "sandbox-unsubscribe-secret-0123456789abcdef",
}


def env_port(name: str, default: int) -> int:
    """A port from the environment, or one clear sentence on why the value cannot be one."""
    raw = os.environ.get(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a port number; set it to an integer such as {default}.") from None
    if not 0 < port < 65536:
        raise SystemExit(f"{name}={port} is outside 1-65535; set it to a free port such as {default}.")
    return port


@dataclass(frozen=True)
class SandboxSettings:
    """Ports and folders of one sandbox; ``home`` holds jars, data, logs and pid files."""

    home: Path
    host: str
    kafka_port: int
    kafka_controller_port: int
    redis_port: int
    topics_file: Path

    @property
    def jars_dir(self) -> Path:
        return self.home / "jars"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.redis_port}/0"

    def env(self) -> dict[str, str]:
        """The variables that point jobs, tests and tools at this sandbox, with the sandbox's published
        credentials (the ESP sandbox's keys; never real ones)."""
        esp = f"http://{self.host}:{env_port('ESP_SANDBOX_PORT', 8025)}"
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "REDIS_URL": self.redis_url,
            "SENDGRID_BASE_URL": esp,
            "MAILCHIMP_BASE_URL": esp,
            "WEBHOOK_URL": f"{esp}/webhook/email",
            "SMTP_HOST": self.host,
            "SMTP_PORT": str(env_port("ESP_SMTP_PORT", 2525)),
            **{name: os.environ.get(name, value) for name, value in SANDBOX_CREDENTIALS.items()},
        }


def load_settings() -> SandboxSettings:
    home = Path(os.environ.get("SANDBOX_HOME", PROJECT_ROOT / ".sandbox")).resolve()
    return SandboxSettings(
        home=home,
        host="127.0.0.1",
        kafka_port=env_port("KAFKA_PORT", 9092),
        kafka_controller_port=env_port("KAFKA_CONTROLLER_PORT", 9093),
        redis_port=env_port("REDIS_PORT", 6379),
        topics_file=Path(os.environ.get("TOPICS_FILE", PROJECT_ROOT / "flink-conf" / "topics.yaml")),
    )
