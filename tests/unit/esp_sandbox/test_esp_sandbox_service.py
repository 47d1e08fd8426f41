"""``make up`` knows the ESP sandbox: after the collector, on its ports, with its files under the sandbox home."""

from __future__ import annotations

import sys
from pathlib import Path

from sandbox.esp import esp_sandbox_process
from sandbox.services import SERVICES, status
from sandbox.settings import SandboxSettings


def _settings(home: Path) -> SandboxSettings:
    return SandboxSettings(
        home=home, host="127.0.0.1", kafka_port=1, kafka_controller_port=2, redis_port=3, topics_file=home / "t.yaml"
    )


def test_it_starts_after_the_collector():
    names = list(SERVICES)

    assert names.index("esp") == names.index("collector") + 1


def test_the_process_uses_the_configured_ports_and_the_sandbox_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ESP_SANDBOX_PORT", "38025")
    monkeypatch.setenv("ESP_SMTP_PORT", "32525")

    process = esp_sandbox_process(_settings(tmp_path))

    assert list(process.argv) == [sys.executable, "-m", "esp_sandbox"]
    assert process.port == 38025 and process.name == "esp"
    assert process.env["ESP_SMTP_PORT"] == "32525"
    assert process.env["ESP_SANDBOX_STORE"] == str(tmp_path / "data" / "esp-sandbox" / "messages.jsonl")
    assert process.env["ESP_SANDBOX_TLS_DIR"] == str(tmp_path / "data" / "esp-sandbox" / "tls")


def test_status_lists_it(monkeypatch, tmp_path):
    monkeypatch.setenv("ESP_SANDBOX_PORT", "1")

    assert "esp" in status(_settings(tmp_path))
