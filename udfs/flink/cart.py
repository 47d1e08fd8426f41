"""The cart abandonment operator: keyed state, one event-time timer, the profile's cart in Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row
from pyflink.datastream import KeyedProcessFunction, RuntimeContext

from connectors.redis import ProfileStore
from udfs.cart import CartDecision, CartPolicy, CartState, apply_event, fire_timer
from udfs.events import InvalidEvent, dead_letter_record, parse_event
from udfs.flink.parse import DEAD_LETTER, LATE, late_record
from udfs.flink.state import expiring_json_state

__all__ = ["CartAbandonmentFunction"]


class CartAbandonmentFunction(KeyedProcessFunction):
    """Per person: the cart, one pending reminder timer, and the profile's cart fields in Redis."""

    def __init__(
        self, policy: CartPolicy, redis_url: str, key_prefix: str, profile_ttl_ms: int, state_ttl_ms: int, stage: str
    ) -> None:
        self.policy = policy
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.profile_ttl_ms = profile_ttl_ms
        self.state_ttl_ms = state_ttl_ms
        self.stage = stage
        self.profiles: ProfileStore | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.cart = expiring_json_state(runtime_context, "cart", self.state_ttl_ms)
        self.profiles = ProfileStore(self.redis_url, self.key_prefix, self.profile_ttl_ms)
        self.profiles.setup()
        metrics = runtime_context.get_metrics_group()
        self.late_events = metrics.counter("late_events")
        self.triggers_fired = metrics.counter("triggers_fired")
        self.rejected = metrics.counter("cart_events_rejected")

    def close(self) -> None:
        if self.profiles is not None:
            self.profiles.close()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        if not value[0]:
            return  # a watermark heartbeat: it has moved event time on upstream, nothing to keep
        payload = value[2]
        watermark = ctx.timer_service().current_watermark()
        if ctx.timestamp() <= watermark:  # Flink's rule: the watermark says nothing at or before it is to come
            self.late_events.inc()
            yield LATE, late_record(payload, ctx.timestamp(), watermark, f"{self.stage}.late")
            return
        state = self._load()
        try:
            decision = apply_event(state, parse_event(payload), self.policy, watermark_ms=watermark)
        except InvalidEvent as exc:
            self.rejected.inc()
            yield DEAD_LETTER, dead_letter_record(payload, exc, self.stage).decode()
            return
        yield from self._carry_out(decision, state, value[0], ctx.timestamp(), ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        state = self._load()
        watermark = ctx.timer_service().current_watermark()
        decision = fire_timer(state, ctx.get_current_key(), timestamp, self.policy, watermark_ms=watermark)
        yield from self._carry_out(decision, state, ctx.get_current_key(), timestamp, ctx)

    def _carry_out(
        self,
        decision: CartDecision,
        before: CartState | None,
        person_id: str,
        at_ms: int,
        ctx: KeyedProcessFunction.Context,
    ) -> Iterator[str]:
        timers = ctx.timer_service()
        old_timer = before.next_reminder_ms if before else None
        after = decision.state
        new_timer = after.next_reminder_ms if after else None
        if old_timer != new_timer:
            if old_timer is not None:
                timers.delete_event_time_timer(old_timer)
            if new_timer is not None:
                timers.register_event_time_timer(new_timer)
        if after is None:
            self.cart.clear()
        else:
            self.cart.update(json.dumps(after.to_dict(), separators=(",", ":")))
        if decision.cart_changed:
            self._write_profile(person_id, after, at_ms)
        for trigger in decision.triggers:
            self.triggers_fired.inc()
            assert self.profiles is not None
            self.profiles.record_trigger(
                person_id,
                {
                    "trigger_id": trigger.trigger_id,
                    "trigger_type": trigger.trigger_type,
                    "template": trigger.template,
                    "fired_at_ms": trigger.fired_at_ms,
                },
            )
            yield trigger.to_json().decode()

    def _write_profile(self, person_id: str, state: CartState | None, at_ms: int) -> None:
        """The profile's cart; an empty one (at the purchase's time) once the state is gone."""
        assert self.profiles is not None
        if state is None:
            self.profiles.write_cart(person_id, {"cart_id": None, "currency": "", "value": 0.0, "items": []}, at_ms)
            return
        cart = {
            "cart_id": state.cart_id,
            "currency": state.currency,
            "value": state.value,
            "items": [item.to_dict() for item in state.items.values()],
        }
        self.profiles.write_cart(person_id, cart, max(state.newest_change_ms, at_ms))

    def _load(self) -> CartState | None:
        raw = self.cart.value()
        return CartState.from_dict(json.loads(raw)) if raw else None
