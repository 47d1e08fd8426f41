"""An end for branches that do their work as side effects (Redis writes) and emit nothing."""

from __future__ import annotations

from pyflink.datastream.connectors import Sink
from pyflink.java_gateway import get_gateway

__all__ = ["discarding_sink"]


def discarding_sink() -> Sink:
    """Flink's own DiscardingSink (sink v2); a Flink branch without a sink would not run at all."""
    sink_v2 = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2
    return Sink(sink_v2.DiscardingSink())
