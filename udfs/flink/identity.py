"""The cart job's identity step: keyed by device, it moves an anonymous cart to the person at login."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row
from pyflink.datastream import KeyedProcessFunction, RuntimeContext

from udfs.events import parse_event
from udfs.flink.state import expiring_json_state
from udfs.identity import DeviceState, resolved_already, route

__all__ = ["FollowLogins"]


class FollowLogins(KeyedProcessFunction):
    """Per device: its link to a person, or its cart events until it has one (see :mod:`udfs.identity`).

    Rows come in and go out as ``(person_id, event_time_ms, payload, device_id)``; rows are valid already
    (``ParseEvents`` sent the rest to the dead-letter topic), and keep their timestamps, so lateness is still
    judged by the cart step.
    """

    def __init__(self, max_events: int, state_ttl_ms: int) -> None:
        self.max_events = max_events
        self.state_ttl_ms = state_ttl_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        self.device = expiring_json_state(runtime_context, "device", self.state_ttl_ms)
        metrics = runtime_context.get_metrics_group()
        self.carts_moved = metrics.counter("anonymous_carts_moved")
        self.events_dropped = metrics.counter("anonymous_cart_events_dropped")

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        if not value[0]:
            return  # a watermark heartbeat: it has moved event time on upstream, nothing to keep
        event = parse_event(value[2])
        if resolved_already(event):
            yield value
            return
        raw = self.device.value()
        before = DeviceState.from_dict(json.loads(raw)) if raw else None
        watermark = ctx.timer_service().current_watermark()
        after, routed = route(before, event, value[2], self.max_events, watermark)
        if after is not before:
            self._save(before, after)
        for r in routed:
            yield Row(r.person_id, r.event_time_ms, r.payload, value[3])

    def _save(self, before: DeviceState | None, after: DeviceState | None) -> None:
        if after is None:
            self.device.clear()
            return
        if before is not None and before.pending and not after.pending:
            self.carts_moved.inc()
        if after.dropped > (before.dropped if before else 0):
            self.events_dropped.inc(after.dropped - (before.dropped if before else 0))
        self.device.update(json.dumps(after.to_dict(), separators=(",", ":")))
