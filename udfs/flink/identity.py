"""The cart job's identity step: keyed by device, it moves an anonymous cart to the person at login."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row
from pyflink.datastream import KeyedProcessFunction, RuntimeContext

from udfs.events import parse_event
from udfs.flink.parse import FOR_CART
from udfs.flink.state import expiring_json_state
from udfs.identity import DeviceState, route

__all__ = ["FollowLogins"]


class FollowLogins(KeyedProcessFunction):
    """Per device: its link to a person, or its cart events until it has one (see :mod:`udfs.identity`).

    Rows come in as ``(event_time_ms, payload, roles, arrived_as_ms)`` keyed by device (``RouteEvents`` sends only
    links and the cart events of browsers not yet known to be a person's), and go out as ``Row(person,
    (event_time_ms, payload, FOR_CART, arrived_as_ms))`` for the cart step; rows are valid already, and keep the
    time of the event that brought them, so lateness is still judged by the cart step.
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
        payload = value.payload
        event = parse_event(payload)
        raw = self.device.value()
        before = DeviceState.from_dict(json.loads(raw)) if raw else None
        watermark = ctx.timer_service().current_watermark()
        after, routed = route(before, event, payload, self.max_events, watermark)
        if after is not before:
            self._save(before, after)
        for r in routed:
            yield Row(r.person_id, Row(r.event_time_ms, r.payload, FOR_CART, event.event_time_ms))

    def _save(self, before: DeviceState | None, after: DeviceState | None) -> None:
        if after is None:
            self.device.clear()
            return
        if before is not None and before.pending and not after.pending:
            self.carts_moved.inc()
        if after.dropped > (before.dropped if before else 0):
            self.events_dropped.inc(after.dropped - (before.dropped if before else 0))
        self.device.update(json.dumps(after.to_dict(), separators=(",", ":")))
