"""One keyed step per person for everything the clickstream decides: the cart, the sessions, the scores, the traits.

Each piece of logic stays its own pure module (udfs/cart.py, udfs/sessions.py, udfs/intent.py, udfs/traits.py);
this adapter only runs them on the same record, so an event is parsed once, crosses into Python once here, and
makes at most one Redis round trip for the profile (one script writes each part under its own event-time guard).

State per person: ``cart`` (udfs.cart.CartState as JSON, expiring after ``cart.state_ttl``) and
``open-sessions`` (the events of sessions not yet closed, cleared as they close). Timers: the cart's one
reminder timer, and one per session end (as Flink's session windows keep them). A timer may be either's, so
each firing asks both; the cart's old timer is deleted only when no open session ends at that time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext, TimeDomain
from pyflink.datastream.state import ValueStateDescriptor

from connectors.redis import BatchedProfileWrites, GuardedFields, ProfileStore, ProfileWrite, cart_fields
from udfs.cart import (
    CART_EVENTS,
    CART_TRANSFERRED,
    CartDecision,
    CartPolicy,
    CartState,
    apply_event,
    fire_timer,
    profile_cart,
)
from udfs.events import ClickEvent, InvalidEvent, dead_letter_record, load_json_object, parse_event
from udfs.flink.parse import DEAD_LETTER, FOR_ACTIVITY, FOR_CART, LATE, late_record
from udfs.flink.state import expiring_json_state
from udfs.intent import BrowsePolicy, IntentWeights, SessionSummary, session_end_triggers, summarize
from udfs.sessions import PendingEvent, Session, close_until, join, sessions
from udfs.traits import profile_fields_from_traits

__all__ = ["ClickstreamFunction", "ClickstreamPolicy"]

_CART_OPS = CART_EVENTS | {CART_TRANSFERRED}
_SCORE_GUARD = "scored_at_ms"
_TRAITS_GUARD = "traits_updated_ms"


@dataclass(frozen=True)
class ClickstreamPolicy:
    """Everything the step decides by, built from the job config (jobs/config.py ``to_policy``)."""

    cart: CartPolicy
    weights: IntentWeights
    browse: BrowsePolicy
    session_gap_ms: int
    cart_state_ttl_ms: int


@dataclass
class _Writes:
    """What one record or timer changes in the profile and the trigger history, written once at the end."""

    groups: list[GuardedFields] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)


class ClickstreamFunction(KeyedProcessFunction):
    """Per person: the cart and its reminder timer, the open sessions and their timers, the profile in Redis."""

    def __init__(
        self,
        policy: ClickstreamPolicy,
        redis_url: str,
        key_prefix: str,
        profile_ttl_ms: int,
        stage: str,
        write_batch: int = 1,
        write_linger_ms: int = 10,
    ) -> None:
        self.policy = policy
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.profile_ttl_ms = profile_ttl_ms
        self.stage = stage
        self.write_batch = write_batch
        self.linger_ms = write_linger_ms
        self.profiles: ProfileStore | None = None
        self.batch: BatchedProfileWrites | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.cart = expiring_json_state(runtime_context, "cart", self.policy.cart_state_ttl_ms)
        # No TTL: every event here is in a session that closes at a timer, and the close clears it.
        self.open_sessions = runtime_context.get_state(ValueStateDescriptor("open-sessions", Types.STRING()))
        self.profiles = ProfileStore(self.redis_url, self.key_prefix, self.profile_ttl_ms)
        self.profiles.setup()
        self.batch = BatchedProfileWrites(self.profiles, self.write_batch, self.linger_ms)
        metrics = runtime_context.get_metrics_group()
        self.late_events = metrics.counter("late_events")
        self.triggers_fired = metrics.counter("triggers_fired")
        self.cart_rejected = metrics.counter("cart_events_rejected")
        self.sessions_scored = metrics.counter("sessions_scored")
        self.traits_written = metrics.counter("traits_written")

    def close(self) -> None:
        if self.batch is not None:
            self.batch.flush()
        if self.profiles is not None:
            self.profiles.close()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        event_time_ms, payload, roles, arrived_as_ms = value[0], value[1], value[2], value[3]
        watermark = ctx.timer_service().current_watermark()
        # Flink's rule: the watermark says nothing at or before it is to come. Judged by the time of the event that
        # brought the record: its own, also for a cart event the login step moved to the login's time.
        if arrived_as_ms <= watermark:
            self.late_events.inc()
            yield LATE, late_record(payload, arrived_as_ms, watermark, f"{self.stage}.late")
            return
        person = ctx.get_current_key()
        event = parse_event(payload)
        writes = _Writes()
        pending: tuple[PendingEvent, ...] | None = None
        if roles & FOR_ACTIVITY:
            pending = self._join_session(person, PendingEvent(event_time_ms, payload), writes, ctx)
            if event.type == "identify":
                self._traits(payload, event_time_ms, writes)
        if roles & FOR_CART and _is_cart_op(event):
            try:
                state = self._load_cart()
                decision = apply_event(state, event, self.policy.cart, watermark_ms=watermark)
            except InvalidEvent as exc:
                self.cart_rejected.inc()
                yield DEAD_LETTER, dead_letter_record(payload, exc, f"{self.stage}.cart").decode()
            else:
                yield from self._carry_out_cart(decision, state, person, event_time_ms, pending, writes, ctx)
        self._write(person, writes, ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[str]:
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:  # a batch's linger is over
            assert self.batch is not None
            self.batch.flush()
            return
        person = ctx.get_current_key()
        writes = _Writes()
        yield from self._close_sessions(person, timestamp, writes)
        state = self._load_cart()
        if state is not None and state.next_reminder_ms == timestamp:
            watermark = ctx.timer_service().current_watermark()
            decision = fire_timer(state, person, timestamp, self.policy.cart, watermark_ms=watermark)
            yield from self._carry_out_cart(decision, state, person, timestamp, None, writes, ctx)
        self._write(person, writes, ctx)

    # --- sessions, scores, traits --------------------------------------------------------------------------

    def _join_session(
        self, person: str, event: PendingEvent, writes: _Writes, ctx: KeyedProcessFunction.Context
    ) -> tuple[PendingEvent, ...]:
        joined = join(self._load_sessions(), event, self.policy.session_gap_ms)
        self._save_sessions(joined.pending)
        writes.groups.append(self._score(person, joined.session))
        ctx.timer_service().register_event_time_timer(joined.timer_ms)
        return joined.pending

    def _close_sessions(self, person: str, timestamp: int, writes: _Writes) -> Iterator[str]:
        pending = self._load_sessions()
        if not pending:
            return
        still_open, closed = close_until(pending, self.policy.session_gap_ms, timestamp)
        if not closed:
            return
        for session in closed:
            summary = self._summarize(person, session)
            writes.groups.append(_score_fields(summary))
            for trigger in session_end_triggers(summary, session.end_ms, self.policy.browse):
                self.triggers_fired.inc()
                writes.triggers.append(
                    {
                        "trigger_id": trigger.trigger_id,
                        "trigger_type": trigger.trigger_type,
                        "fired_at_ms": trigger.fired_at_ms,
                    }
                )
                yield trigger.to_json().decode()
        self._save_sessions(still_open)

    def _score(self, person: str, session: Session) -> GuardedFields:
        return _score_fields(self._summarize(person, session))

    def _summarize(self, person: str, session: Session) -> SessionSummary:
        self.sessions_scored.inc()
        events = (_parsed(e.payload) for e in session.events)
        return summarize(person, events, self.policy.weights, self.policy.browse)

    def _traits(self, payload: str, event_time_ms: int, writes: _Writes) -> None:
        fields = profile_fields_from_traits(load_json_object(payload))
        if fields:
            writes.groups.append(GuardedFields(_TRAITS_GUARD, event_time_ms, fields))
            self.traits_written.inc()

    def _load_sessions(self) -> list[PendingEvent]:
        raw = self.open_sessions.value()
        return [PendingEvent(t, payload) for t, payload in json.loads(raw)] if raw else []

    def _save_sessions(self, events: Sequence[PendingEvent]) -> None:
        if events:
            self.open_sessions.update(json.dumps([[e.event_time_ms, e.payload] for e in events]))
        else:
            self.open_sessions.clear()

    # --- the cart ----------------------------------------------------------------------------------------------

    def _carry_out_cart(
        self,
        decision: CartDecision,
        before: CartState | None,
        person: str,
        at_ms: int,
        pending: Sequence[PendingEvent] | None,
        writes: _Writes,
        ctx: KeyedProcessFunction.Context,
    ) -> Iterator[str]:
        timers = ctx.timer_service()
        old_timer = before.next_reminder_ms if before else None
        after = decision.state
        new_timer = after.next_reminder_ms if after else None
        if old_timer != new_timer:
            if old_timer is not None and not self._session_ends_at(old_timer, pending):
                timers.delete_event_time_timer(old_timer)
            if new_timer is not None:
                timers.register_event_time_timer(new_timer)
        if after is None:
            self.cart.clear()
        else:
            self.cart.update(json.dumps(after.to_dict(), separators=(",", ":")))
        if decision.cart_changed:
            writes.groups.append(cart_fields(*profile_cart(after, at_ms)))
        for trigger in decision.triggers:
            self.triggers_fired.inc()
            writes.triggers.append(
                {
                    "trigger_id": trigger.trigger_id,
                    "trigger_type": trigger.trigger_type,
                    "template": trigger.template,
                    "fired_at_ms": trigger.fired_at_ms,
                }
            )
            yield trigger.to_json().decode()

    def _session_ends_at(self, timer_ms: int, pending: Sequence[PendingEvent] | None) -> bool:
        """Whether an open session's timer is also at ``timer_ms`` (Flink keeps one timer per key and time)."""
        events = list(pending) if pending is not None else self._load_sessions()
        return any(s.end_ms - 1 == timer_ms for s in sessions(events, self.policy.session_gap_ms))

    def _load_cart(self) -> CartState | None:
        raw = self.cart.value()
        return CartState.from_dict(json.loads(raw)) if raw else None

    # --- Redis -------------------------------------------------------------------------------------------------

    def _write(self, person: str, writes: _Writes, ctx: KeyedProcessFunction.Context) -> None:
        assert self.batch is not None
        if not (writes.groups or writes.triggers):
            return
        if self.batch.add(ProfileWrite(person, writes.groups, writes.triggers)):
            # the batch's first write: make sure it goes out within the linger even if no record follows
            timers = ctx.timer_service()
            timers.register_processing_time_timer(timers.current_processing_time() + self.linger_ms)


@lru_cache(maxsize=8192)
def _parsed(payload: str) -> ClickEvent:
    """Each event of an open session is read again at every rescoring; parse it once (it was valid already)."""
    return parse_event(payload)


def _score_fields(summary: SessionSummary) -> GuardedFields:
    fields = {k: v for k, v in summary.to_profile_fields().items() if k not in (_SCORE_GUARD, "last_seen_ms")}
    return GuardedFields(_SCORE_GUARD, summary.as_of_ms, fields)


def _is_cart_op(event: ClickEvent) -> bool:
    return event.type == "track" and event.name in _CART_OPS
