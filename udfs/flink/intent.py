"""The intent scoring operator: each person's sessions, scored on every event and decided at their end.

Scoring on every event keeps the profile's scores fresh (the promise is a usable profile within 200 ms of
the click); the session's close, when the watermark passes its end, is the only point that emits triggers.
Sessions are drawn by ``udfs.sessions`` from the events kept in keyed state, with Flink's session-window
rules, so the job runs in thread mode (PyFlink 2.2.1's window operator cannot).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from connectors.redis import ProfileStore
from udfs.events import parse_event
from udfs.flink.parse import LATE, late_record
from udfs.intent import BrowsePolicy, IntentWeights, SessionSummary, session_end_triggers, summarize
from udfs.sessions import PendingEvent, Session, close_until, join

__all__ = ["IntentSessions"]

_GUARD = "scored_at_ms"


class IntentSessions(KeyedProcessFunction):
    """Per person: the events of sessions not yet closed, scores into the profile, triggers at each close."""

    def __init__(
        self,
        weights: IntentWeights,
        policy: BrowsePolicy,
        gap_ms: int,
        redis_url: str,
        key_prefix: str,
        ttl_ms: int,
        stage: str,
    ) -> None:
        self.stage = stage
        self.weights = weights
        self.policy = policy
        self.gap_ms = gap_ms
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.ttl_ms = ttl_ms
        self.profiles: ProfileStore | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        # No TTL: every event here is in a session that closes at a timer, and the close clears it.
        self.pending = runtime_context.get_state(ValueStateDescriptor("open-sessions", Types.STRING()))
        self.profiles = ProfileStore(self.redis_url, self.key_prefix, self.ttl_ms)
        self.profiles.setup()
        metrics = runtime_context.get_metrics_group()
        self.scored = metrics.counter("sessions_scored")
        self.triggers_fired = metrics.counter("triggers_fired")
        self.late_events = metrics.counter("late_events")

    def close(self) -> None:
        if self.profiles is not None:
            self.profiles.close()

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        if not value[0]:
            return  # a watermark heartbeat: it has moved event time on upstream, nothing to keep
        watermark = ctx.timer_service().current_watermark()
        if ctx.timestamp() <= watermark:  # Flink's rule; such an event's session may have closed already
            self.late_events.inc()
            yield LATE, late_record(value[2], ctx.timestamp(), watermark, f"{self.stage}.late")
            return
        joined = join(self._load(), PendingEvent(ctx.timestamp(), value[2]), self.gap_ms)
        self._save(joined.pending)
        self._score(ctx.get_current_key(), joined.session)
        ctx.timer_service().register_event_time_timer(joined.timer_ms)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[str]:
        person = ctx.get_current_key()
        still_open, closed = close_until(self._load(), self.gap_ms, timestamp)
        for session in closed:
            summary = self._score(person, session)
            for trigger in session_end_triggers(summary, session.end_ms, self.policy):
                self.triggers_fired.inc()
                assert self.profiles is not None
                self.profiles.record_trigger(
                    person,
                    {
                        "trigger_id": trigger.trigger_id,
                        "trigger_type": trigger.trigger_type,
                        "fired_at_ms": trigger.fired_at_ms,
                    },
                )
                yield trigger.to_json().decode()
        self._save(still_open)

    def _score(self, person: str, session: Session) -> SessionSummary:
        assert self.profiles is not None
        summary = summarize(person, (parse_event(e.payload) for e in session.events), self.weights, self.policy)
        fields = {k: v for k, v in summary.to_profile_fields().items() if k not in (_GUARD, "last_seen_ms")}
        self.profiles.write_guarded(person, _GUARD, summary.as_of_ms, fields)
        self.scored.inc()
        return summary

    def _load(self) -> list[PendingEvent]:
        raw = self.pending.value()
        return [PendingEvent(t, payload) for t, payload in json.loads(raw)] if raw else []

    def _save(self, events: Sequence[PendingEvent]) -> None:
        if events:
            self.pending.update(json.dumps([[e.event_time_ms, e.payload] for e in events]))
        else:
            self.pending.clear()
