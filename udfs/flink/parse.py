"""The clickstream job's front: validate records, route bad ones, send each on to the step that keys it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row, Types
from pyflink.common.typeinfo import RowTypeInfo
from pyflink.datastream import OutputTag, ProcessFunction, RuntimeContext

from udfs.events import InvalidEvent, dead_letter_record, parse_event
from udfs.identity import needs_login_step

__all__ = [
    "DEAD_LETTER",
    "FOR_ACTIVITY",
    "FOR_CART",
    "LATE",
    "LOGINS",
    "RouteEvents",
    "keyed_event_type",
    "routed_event_type",
    "late_record",
]

log = logging.getLogger(__name__)


DEAD_LETTER = OutputTag("dead-letter", Types.STRING())
LATE = OutputTag("late", Types.STRING())


def late_record(payload: str, event_time_ms: int, watermark_ms: int, stage: str) -> str:
    """A late event as a dead letter: kept as data with how late it was, never dropped silently."""
    reason = InvalidEvent("timestamp", f"late: {watermark_ms - event_time_ms} ms behind the watermark")
    return dead_letter_record(payload, reason, stage).decode()


# The one clickstream job's rows between operators: ``(key, (event_time_ms, payload, roles))``, the key first so
# that Flink keys them on the Java side (udfs/flink/keyed.py) and a union of two such streams needs no Python step.
#: the record is for the cart step (udfs/cart.py)
FOR_CART = 1
#: the record is for sessions, scores and traits (udfs/sessions.py, udfs/intent.py, udfs/traits.py)
FOR_ACTIVITY = 2


def routed_event_type() -> RowTypeInfo:
    """``(event_time_ms, payload, roles, arrived_as_ms)``: a record on its way to the person's keyed step.

    ``arrived_as_ms`` is the time of the event that brought it, by which lateness is judged: the event's own time,
    also for a cart event the login step moved to the login's time (``event_time_ms``). It travels in the row
    because Flink does not keep element timestamps on a Python function's side outputs and keyed outputs.
    """
    return Types.ROW_NAMED(
        ["event_time_ms", "payload", "roles", "arrived_as_ms"],
        [Types.LONG(), Types.STRING(), Types.INT(), Types.LONG()],
    )


def keyed_event_type() -> RowTypeInfo:
    """A routed record with its key in front (the shape Flink's Python ``key_by`` makes)."""
    return Types.ROW([Types.STRING(), routed_event_type()])


LOGINS = OutputTag("logins", keyed_event_type())


class RouteEvents(ProcessFunction):
    """Parses each record once, dead-letters the bad ones, drops heartbeats, and routes the rest.

    Every event goes on keyed by its person (the collector's) for sessions, scores and traits, and for the cart
    too when nothing about logins can change where its cart op belongs. Links (identify, alias) and cart events of
    browsers not yet known to be a person's also go, keyed by device, to the login step (:data:`LOGINS`), which
    decides the cart's key (udfs/identity.py). So most events cross into Python twice in the whole job.

    Watermarks come from the Kafka record timestamp (the collector stamps the event time there), made by the
    source itself, so a heartbeat has moved event time on before it gets here and is dropped.
    """

    def __init__(self, stage: str, follow_logins: bool = True) -> None:
        self.stage = stage
        self.follow_logins = follow_logins

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
            return
        self.parsed.inc()
        t = event.event_time_ms
        if self.follow_logins and needs_login_step(event):
            yield LOGINS, Row(event.device_id, Row(t, value, FOR_CART, t))
            yield Row(event.person_id, Row(t, value, FOR_ACTIVITY, t))
        else:
            yield Row(event.person_id, Row(t, value, FOR_CART | FOR_ACTIVITY, t))
