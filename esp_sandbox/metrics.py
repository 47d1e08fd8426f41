"""The sandbox's Prometheus metrics, served at ``/metrics``: what it kept, what it answered, which faults fired.

Each :class:`SandboxMetrics` has its own registry, so tests can build several apps in one process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

__all__ = ["SandboxMetrics"]


class SandboxMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.kept = Counter(
            "cartpulse_esp_sandbox_messages_kept",
            "Emails the sandbox accepted and kept, by provider.",
            ["provider"],
            registry=self.registry,
        )
        self.answers = Counter(
            "cartpulse_esp_sandbox_answers",
            "Answers given, by endpoint and status (SMTP: the reply code of DATA).",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.faults = Counter(
            "cartpulse_esp_sandbox_faults_served",
            "Injected faults used up, by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0.0 when never set); for tests."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
