"""One partition's people: the clickstream job's pure steps (``udfs/``) with state in dicts and timers in a heap.

This does with the steps' decisions what the job's keyed step, ``udfs/flink/clickstream.py``, does (state
update, timer set and delete, one guarded profile write per record with a group per part, trigger history,
triggers out), written again without Flink. The profile fields come from ``connectors/redis.py``
(``cart_fields``, ``GuardedFields``) and the decisions from the same functions, so a difference in outputs is a
difference in this plumbing, not in the rules. Kafka stays outside (:class:`Outputs`), so the steps can be
driven by a list of records as well as by a consumer.

Two timer namespaces (cart, sessions), as two operators would keep them; the job shares one per person and
asks both steps at each firing, which decides the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.redis import GuardedFields, ProfileStore, cart_fields
from udfs.cart import (
    CART_EVENTS,
    CART_TRANSFERRED,
    NO_WATERMARK,
    CartDecision,
    CartState,
    apply_event,
    fire_timer,
    profile_cart,
)
from udfs.events import ClickEvent, InvalidEvent, dead_letter_record, load_json_object, parse_event
from udfs.intent import SessionSummary, session_end_triggers, summarize
from udfs.sessions import PendingEvent, Session, close_until, join
from udfs.traits import profile_fields_from_traits

from .logic import Logic
from .timers import TimerQueue

__all__ = ["MAX_WATERMARK", "Counts", "Outputs", "PartitionSteps"]

#: The watermark a bounded Flink source ends with (``Long.MAX_VALUE``): every timer fires.
MAX_WATERMARK = 2**63 - 1
CART, SESSION = 0, 1
_CART_OPS = CART_EVENTS | {CART_TRANSFERRED}
_SCORE_GUARD = "scored_at_ms"
_TRAITS_GUARD = "traits_updated_ms"


class Outputs(Protocol):
    """Where triggers and dead letters go (the worker's Kafka producer; a list in a test)."""

    def trigger(self, value: bytes) -> None: ...

    def dead_letter(self, value: bytes) -> None: ...


@dataclass
class Counts:
    """What the steps did, for the run's report."""

    records: int = 0
    triggers: int = 0
    dead_letters: int = 0
    late: int = 0
    heartbeats: int = 0
    profile_writes: int = 0


@dataclass
class _Writes:
    """What one record or timer changes in one person's profile: one guarded write, then the trigger history."""

    groups: list[GuardedFields] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)


class PartitionSteps:
    """Cart, sessions, scores and traits for every person of one partition, on that partition's event time.

    :param streaming: advance the watermark with every record (``max event time - out_of_orderness - 1``, Flink's
        bounded-out-of-orderness rule), firing timers as it passes them, as a live consumer must. ``False``: no
        watermark until :meth:`finish`, as the job's bounded run (``jobs/clickstream.py``); nothing is late then.
    :param stage: prefix of the dead letters' ``stage`` (``<stage>.parse``, ``.cart``, ``.late``), as the job
        names its own after the job.
    """

    def __init__(
        self, logic: Logic, profiles: ProfileStore, outputs: Outputs, stage: str = "baseline", streaming: bool = True
    ) -> None:
        self.logic = logic
        self.profiles = profiles
        self.outputs = outputs
        self.stage = stage
        self.streaming = streaming
        self.counts = Counts()
        self.carts: dict[str, CartState] = {}
        self.open_sessions: dict[str, tuple[PendingEvent, ...]] = {}
        self.timers = TimerQueue()
        self.watermark = NO_WATERMARK
        self.profiled: set[str] = set()  # people whose profile hash was written (one process owns each person)
        # The events of open sessions, parsed: each rescoring reads them all again (the job caches them too).
        self._parsed: dict[PendingEvent, ClickEvent] = {}
        self._behind = logic.out_of_orderness_ms + 1

    def on_record(self, payload: str) -> None:
        """One Kafka record: parse, late check, session and scores, traits, cart, one write, then the watermark."""
        self.counts.records += 1
        try:
            event = parse_event(payload)
        except InvalidEvent as exc:
            self._dead_letter(dead_letter_record(payload, exc, f"{self.stage}.parse"))
            return
        if not event.person_id:  # a watermark heartbeat: a bounded run ends with its own watermark
            self.counts.heartbeats += 1
            return
        person, t = event.person_id, event.event_time_ms
        if t <= self.watermark:  # Flink's rule: the watermark says nothing at or before it is still to come
            self.counts.late += 1
            self._dead_letter(_late_record(payload, t, self.watermark, f"{self.stage}.late"))
        else:
            writes = _Writes()
            self._join_session(event, payload, writes)
            if event.type == "identify":
                self._traits(t, payload, writes)
            if event.type == "track" and event.name in _CART_OPS:
                self._cart_event(event, payload, writes)
            self._write(person, writes)
        if self.streaming:
            self.advance(t - self._behind)

    def advance(self, watermark_ms: int) -> None:
        """Move event time on and fire every timer it passes, earliest first, as Flink's timer service does."""
        if watermark_ms <= self.watermark:
            return
        self.watermark = watermark_ms
        while (timer := self.timers.pop_due(watermark_ms)) is not None:
            at_ms, step, person = timer
            writes = _Writes()
            if step == CART:
                self._cart_timer(person, at_ms, writes)
            else:
                self._close_sessions(person, at_ms, writes)
            self._write(person, writes)

    def finish(self) -> None:
        """End of a bounded input: the final watermark fires everything still pending."""
        self.advance(MAX_WATERMARK)

    # -- sessions, scores, traits --

    def _join_session(self, event: ClickEvent, payload: str, writes: _Writes) -> None:
        pending = PendingEvent(event.event_time_ms, payload)
        self._parsed[pending] = event
        joined = join(self.open_sessions.get(event.person_id, ()), pending, self.logic.session_gap_ms)
        self.open_sessions[event.person_id] = joined.pending
        writes.groups.append(_score_fields(self._summarize(event.person_id, joined.session)))
        self.timers.register(SESSION, event.person_id, joined.timer_ms)

    def _close_sessions(self, person: str, at_ms: int, writes: _Writes) -> None:
        still_open, closed = close_until(self.open_sessions.get(person, ()), self.logic.session_gap_ms, at_ms)
        for session in closed:
            summary = self._summarize(person, session)
            writes.groups.append(_score_fields(summary))
            for trigger in session_end_triggers(summary, session.end_ms, self.logic.browse):
                history = {
                    "trigger_id": trigger.trigger_id,
                    "trigger_type": trigger.trigger_type,
                    "fired_at_ms": trigger.fired_at_ms,
                }
                self._trigger(history, trigger.to_json(), writes)
            for pending in session.events:
                self._parsed.pop(pending, None)
        if still_open:
            self.open_sessions[person] = still_open
        else:
            self.open_sessions.pop(person, None)

    def _summarize(self, person: str, session: Session) -> SessionSummary:
        parsed = self._parsed
        events = (parsed.get(e) or parse_event(e.payload) for e in session.events)
        return summarize(person, events, self.logic.weights, self.logic.browse)

    def _traits(self, t: int, payload: str, writes: _Writes) -> None:
        fields = profile_fields_from_traits(load_json_object(payload))
        if fields:
            writes.groups.append(GuardedFields(_TRAITS_GUARD, t, fields))

    # -- the cart --

    def _cart_event(self, event: ClickEvent, payload: str, writes: _Writes) -> None:
        before = self.carts.get(event.person_id)
        try:
            decision = apply_event(before, event, self.logic.cart, watermark_ms=self.watermark)
        except InvalidEvent as exc:  # the cart cannot name a line; the session has taken the event already
            self._dead_letter(dead_letter_record(payload, exc, f"{self.stage}.cart"))
            return
        self._carry_out(decision, before, event.person_id, event.event_time_ms, writes)

    def _cart_timer(self, person: str, at_ms: int, writes: _Writes) -> None:
        before = self.carts.get(person)
        decision = fire_timer(before, person, at_ms, self.logic.cart, watermark_ms=self.watermark)
        self._carry_out(decision, before, person, at_ms, writes)

    def _carry_out(
        self, decision: CartDecision, before: CartState | None, person: str, at_ms: int, writes: _Writes
    ) -> None:
        old_timer = before.next_reminder_ms if before else None
        after = decision.state
        new_timer = after.next_reminder_ms if after else None
        if old_timer != new_timer:
            if old_timer is not None:
                self.timers.delete(CART, person, old_timer)
            if new_timer is not None:
                self.timers.register(CART, person, new_timer)
        if after is None:
            self.carts.pop(person, None)
        else:
            self.carts[person] = after
        if decision.cart_changed:
            writes.groups.append(_profile_cart_fields(after, at_ms))
        for trigger in decision.triggers:
            history = {
                "trigger_id": trigger.trigger_id,
                "trigger_type": trigger.trigger_type,
                "template": trigger.template,
                "fired_at_ms": trigger.fired_at_ms,
            }
            self._trigger(history, trigger.to_json(), writes)

    # -- outputs --

    def _write(self, person: str, writes: _Writes) -> None:
        """The person's profile parts in one guarded write, then the trigger history (after what it follows)."""
        if writes.groups:
            self.profiles.write_groups(person, writes.groups)
            self.profiled.add(person)
            self.counts.profile_writes += 1
        for history in writes.triggers:
            self.profiles.record_trigger(person, history)

    def _trigger(self, history: dict[str, Any], value: bytes, writes: _Writes) -> None:
        writes.triggers.append(history)
        self.outputs.trigger(value)
        self.counts.triggers += 1

    def _dead_letter(self, value: bytes) -> None:
        self.outputs.dead_letter(value)
        self.counts.dead_letters += 1


def _score_fields(summary: SessionSummary) -> GuardedFields:
    fields = {k: v for k, v in summary.to_profile_fields().items() if k not in (_SCORE_GUARD, "last_seen_ms")}
    return GuardedFields(_SCORE_GUARD, summary.as_of_ms, fields)


def _late_record(payload: str, event_time_ms: int, watermark_ms: int, stage: str) -> bytes:
    """``udfs.flink.parse.late_record``, which cannot be imported without PyFlink: the same dead letter."""
    reason = InvalidEvent("timestamp", f"late: {watermark_ms - event_time_ms} ms behind the watermark")
    return dead_letter_record(payload, reason, stage)


def _profile_cart_fields(state: CartState | None, at_ms: int) -> GuardedFields:
    return cart_fields(*profile_cart(state, at_ms))
