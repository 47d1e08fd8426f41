"""The front every clickstream job shares: Kafka records → validated rows on event time, plus rejects."""

from __future__ import annotations

from pyflink.common import Duration, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Source

from jobs.config import EventTimeSettings
from udfs.flink.parse import DEAD_LETTER, PARSED_EVENT, EventTime, ParseEvents

__all__ = ["parsed_events"]


def parsed_events(
    env: StreamExecutionEnvironment, source: Source, source_name: str, event_time: EventTimeSettings, stage: str
) -> tuple[DataStream, DataStream]:
    """Rows ``(person_id, event_time_ms, payload)`` with timestamps and watermarks, and the rejected records."""
    raw = env.from_source(source, WatermarkStrategy.no_watermarks(), source_name).uid("events-source")
    parsed = raw.process(ParseEvents(stage=stage), output_type=PARSED_EVENT).uid("parse")
    watermarks = (
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(event_time.max_out_of_orderness))
        .with_idleness(Duration.of_millis(event_time.idleness))
        .with_timestamp_assigner(EventTime())
    )
    timed = parsed.assign_timestamps_and_watermarks(watermarks).uid("event-time")
    return timed, parsed.get_side_output(DEAD_LETTER)
