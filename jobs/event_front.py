"""The front every clickstream job shares: Kafka records → validated rows on event time, plus rejects."""

from __future__ import annotations

import logging

from pyflink.common import Duration, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Source

from connectors.kafka import partition_count
from jobs.config import EventTimeSettings, KafkaSettings
from udfs.flink.parse import DEAD_LETTER, PARSED_EVENT, EventTime, ParseEvents

__all__ = ["parsed_events"]

log = logging.getLogger(__name__)


def parsed_events(
    env: StreamExecutionEnvironment,
    kafka: KafkaSettings,
    source: Source,
    topic: str,
    event_time: EventTimeSettings,
    stage: str,
) -> tuple[DataStream, DataStream]:
    """Rows ``(person_id, event_time_ms, payload, device_id)`` with timestamps and watermarks, and the rejected
    records.

    Watermarks are made after parsing, per subtask, so each subtask must read one partition: one reading two
    interleaves them in fetch-sized runs, and on a replay or a catch-up one partition runs ahead and the
    other's events arrive behind the watermark (measured: 60 of 190 events of the demo's replay dead-lettered
    as late). So with ``kafka.parallelism_from_partitions`` the job runs with at least one subtask per
    partition. It must be the whole job, not only the source: with 10 ms Python bundles, 4 parsing subtasks
    feeding 2 keyed ones still let a few events fall behind the watermark (tests/integration/
    test_replay_partitions.py), which one parallelism throughout does not.
    """
    if kafka.parallelism_from_partitions:
        partitions = partition_count(kafka, topic)
        if partitions is not None and partitions > env.get_parallelism():
            log.info("%s has %d partitions: running with parallelism %d", topic, partitions, partitions)
            env.set_parallelism(partitions)
    raw = env.from_source(source, WatermarkStrategy.no_watermarks(), topic).uid("events-source")
    parse = ParseEvents(stage=stage, drop_heartbeats=kafka.bounded)  # a bounded run ends with its own watermark
    parsed = raw.process(parse, output_type=PARSED_EVENT).uid("parse")
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(event_time.max_out_of_orderness))
    if not kafka.bounded:
        # A bounded replay needs no idleness (each partition ends with a final watermark), and with it a partition
        # that is merely slower than the others would have its events dead-lettered as late.
        watermarks = watermarks.with_idleness(Duration.of_millis(event_time.idleness))
    watermarks = watermarks.with_timestamp_assigner(EventTime())
    timed = parsed.assign_timestamps_and_watermarks(watermarks).uid("event-time")
    return timed, parsed.get_side_output(DEAD_LETTER)
