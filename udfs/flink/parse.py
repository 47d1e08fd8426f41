"""The shared front of every clickstream job: validate records, route bad ones, read event time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row, Types
from pyflink.common.typeinfo import RowTypeInfo
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import OutputTag, ProcessFunction, RuntimeContext

from udfs.events import InvalidEvent, dead_letter_record, parse_event

__all__ = [
    "DEAD_LETTER",
    "LATE",
    "PARSED_EVENT",
    "EventTime",
    "ParseEvents",
    "late_record",
    "parsed_event_type",
]

log = logging.getLogger(__name__)


# A parsed event between operators: the key, the event time, the original JSON, and the device it came from
# (the key of the cart job's identity step, udfs.identity).
def parsed_event_type() -> RowTypeInfo:
    """A fresh type each call: a type that was already handed to Java holds a py4j object that cannot be
    pickled. (The window late-data tag that first needed this is gone with the intent job's windows; the cart
    job's identity step still takes a fresh one, and has not been tried with the shared constant.)"""
    return Types.ROW_NAMED(
        ["person_id", "event_time_ms", "payload", "device_id"],
        [Types.STRING(), Types.LONG(), Types.STRING(), Types.STRING()],
    )


PARSED_EVENT = parsed_event_type()
DEAD_LETTER = OutputTag("dead-letter", Types.STRING())
LATE = OutputTag("late", Types.STRING())


class ParseEvents(ProcessFunction):
    """Validates each Kafka record; bad ones go to the dead-letter side output with the reason.

    :param drop_heartbeats: drop the collector's watermark heartbeats here. A bounded run ends with a final
        watermark, so it needs none, and without them a replay written into a topic that a live collector beats
        on is judged by its own events alone (a heartbeat stamped "now" before them would make them late).
    """

    def __init__(self, stage: str, drop_heartbeats: bool = False) -> None:
        self.stage = stage
        self.drop_heartbeats = drop_heartbeats

    def open(self, runtime_context: RuntimeContext) -> None:
        metrics = runtime_context.get_metrics_group()
        self.parsed = metrics.counter("events_parsed")
        self.rejected = metrics.counter("events_rejected")
        self.heartbeats = metrics.counter("heartbeats_read")

    def process_element(self, value: str, ctx: ProcessFunction.Context) -> Iterator[Any]:
        try:
            event = parse_event(value)
        except InvalidEvent as exc:
            self.rejected.inc()
            yield DEAD_LETTER, dead_letter_record(value, exc, self.stage).decode()
            return
        if not event.person_id:  # a watermark heartbeat (udfs.events.HEARTBEAT_TYPE)
            self.heartbeats.inc()
            if self.drop_heartbeats:
                return
        else:
            self.parsed.inc()
        yield Row(event.person_id, event.event_time_ms, value, event.device_id)


class EventTime(TimestampAssigner):
    """Event time is the event's own (collector-corrected) timestamp, never arrival time."""

    def extract_timestamp(self, value: Row, record_timestamp: int) -> int:
        return int(value[1])


def late_record(payload: str, event_time_ms: int, watermark_ms: int, stage: str) -> str:
    """A late event as a dead letter: kept as data with how late it was, never dropped silently."""
    reason = InvalidEvent("timestamp", f"late: {watermark_ms - event_time_ms} ms behind the watermark")
    return dead_letter_record(payload, reason, stage).decode()
