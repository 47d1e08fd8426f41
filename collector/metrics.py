"""The collector's Prometheus metrics, served at ``/metrics``.

Each :class:`CollectorMetrics` has its own registry, so tests can build several collectors in one process and
read the values back (``metrics.value("cartpulse_collector_events_accepted_total", type="track")``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CollectorMetrics"]

# Produce latency: a local broker acks in milliseconds; a sick one hits the produce timeout (10 s by default).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class CollectorMetrics:
    """Counters for accepted, rejected (by reason) and deduplicated events, and the produce latency."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.accepted = Counter(
            "cartpulse_collector_events_accepted",
            "Events the broker acknowledged, by call type.",
            ["type"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "cartpulse_collector_events_rejected",
            "Events (or whole bodies) refused with a 4xx, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.deduplicated = Counter(
            "cartpulse_collector_events_deduplicated",
            "Events dropped because their messageId was already produced within the dedup window.",
            registry=self.registry,
        )
        self.unavailable = Counter(
            "cartpulse_collector_requests_unavailable",
            "Requests answered 503, by the backend that could not take them (kafka, redis, in_flight).",
            ["backend"],
            registry=self.registry,
        )
        self.dead_letter_failures = Counter(
            "cartpulse_collector_dead_letter_failures",
            "Rejected events that could not be written to the dead-letter topic.",
            registry=self.registry,
        )
        # Labels are bounded: the six E-commerce event names, the spec's fields with indexes dropped, three reasons.
        self.ecommerce_deviations = Counter(
            "cartpulse_collector_ecommerce_deviations",
            "Accepted E-commerce events whose properties deviate from Segment's spec, by event, field "
            "(properties.products[].price for any line) and reason; an event counts once per field and reason.",
            ["event", "field", "reason"],
            registry=self.registry,
        )
        self.produce_latency = Histogram(
            "cartpulse_collector_produce_latency_seconds",
            "From handing a request's events to the producer until the broker acknowledged all of them.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # The watermark heartbeats (collector/heartbeat.py).
        self.heartbeats = Counter(
            "cartpulse_collector_heartbeats",
            "Watermark heartbeats the broker acknowledged (one per partition and interval).",
            registry=self.registry,
        )
        self.heartbeat_failures = Counter(
            "cartpulse_collector_heartbeat_failures",
            "Heartbeat intervals skipped or left half-done, by the backend that failed (kafka, redis).",
            ["backend"],
            registry=self.registry,
        )
        self.event_clock_offset = Gauge(
            "cartpulse_collector_event_clock_offset_seconds",
            "Event clock minus wall clock (<= 0): about 0 live, minus the replayed events' age in a replay.",
            registry=self.registry,
        )

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0.0 when never set); for tests and the bench."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
