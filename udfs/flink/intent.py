"""The intent scoring operator: a session window that scores on every event and decides at its end.

Firing on every element keeps the profile's scores fresh (the promise is a usable profile within
200 ms of the click); the firing at the window's end is the only one that emits triggers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pyflink.common import Row
from pyflink.datastream import RuntimeContext
from pyflink.datastream.functions import ProcessWindowFunction
from pyflink.datastream.window import EventTimeTrigger, TimeWindow, Trigger, TriggerResult

from connectors.redis import ProfileStore
from udfs.events import parse_event
from udfs.intent import BrowsePolicy, IntentWeights, session_end_triggers, summarize

__all__ = ["FireOnEveryEvent", "IntentWindowFunction"]

_GUARD = "scored_at_ms"


class FireOnEveryEvent(EventTimeTrigger):
    """Fire (without purging) on each event, and once more when the watermark passes the session's end."""

    def on_element(
        self, element: Row, timestamp: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        super().on_element(element, timestamp, window, ctx)
        return TriggerResult.FIRE


class IntentWindowFunction(ProcessWindowFunction):
    """Scores the session's events into the profile; at the session's end, emits browse/high-intent triggers."""

    def __init__(self, weights: IntentWeights, policy: BrowsePolicy, redis_url: str, key_prefix: str, ttl_ms: int):
        self.weights = weights
        self.policy = policy
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.ttl_ms = ttl_ms
        self.profiles: ProfileStore | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.profiles = ProfileStore(self.redis_url, self.key_prefix, self.ttl_ms)
        self.profiles.setup()
        metrics = runtime_context.get_metrics_group()
        self.scored = metrics.counter("sessions_scored")
        self.triggers_fired = metrics.counter("triggers_fired")

    def close(self) -> None:
        if self.profiles is not None:
            self.profiles.close()

    def process(self, key: str, context: ProcessWindowFunction.Context, elements: Iterable[Row]) -> Iterator[str]:
        assert self.profiles is not None
        summary = summarize(key, (parse_event(row[2]) for row in elements), self.weights, self.policy)
        fields = {k: v for k, v in summary.to_profile_fields().items() if k not in (_GUARD, "last_seen_ms")}
        self.profiles.write_guarded(key, _GUARD, summary.as_of_ms, fields)
        self.scored.inc()
        window = context.window()
        if context.current_watermark() < window.max_timestamp():
            return
        for trigger in session_end_triggers(summary, window.end, self.policy):
            self.triggers_fired.inc()
            self.profiles.record_trigger(
                key,
                {
                    "trigger_id": trigger.trigger_id,
                    "trigger_type": trigger.trigger_type,
                    "fired_at_ms": trigger.fired_at_ms,
                },
            )
            yield trigger.to_json().decode()
