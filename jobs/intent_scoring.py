"""Intent scoring: event-time sessions score each person's engagement and purchase intent into the profile.

clickstream.events ─► parse ─► watermarks ─► key_by(person) ─► IntentSessions ─┬─ scores ─► Redis profile
                        │                                           │           └─ triggers ─► email.triggers
                        └── bad records ──────┬──── late ───────────┘
                                              └─► clickstream.dlq

Identify calls also set the profile's email, name and time zone (udfs/traits.py), which delivery uses.
Each event rescores its session (fresh scores); a session's close, when the watermark passes its end,
emits the triggers. Sessions follow Flink's session-window rules (udfs/sessions.py) but live in keyed
state and timers, since PyFlink's window operator cannot run in thread mode. The formula is documented in
udfs/intent.py and its weights are in flink-conf/jobs/intent_scoring.yaml.

Where state could leak: none beyond the events of open sessions, cleared when each session closes; the
profile hash expires after ``redis.profile_ttl`` of silence.
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Source

from connectors.discard import discarding_sink
from jobs.config import IntentScoringConfig
from jobs.event_front import parsed_events
from jobs.runner import JobSinks, run_job
from udfs.flink.intent import IntentSessions
from udfs.flink.parse import LATE
from udfs.flink.traits import WriteTraits
from udfs.intent import BrowsePolicy, IntentWeights

DEFAULT_CONFIG = "flink-conf/jobs/intent_scoring.yaml"


def weights_from(cfg: IntentScoringConfig) -> IntentWeights:
    w = cfg.weights
    return IntentWeights(
        view=w.view,
        cart_view=w.cart_view,
        cart_add=w.cart_add,
        checkout=w.checkout,
        repeat_view=w.repeat_view,
        category_view=w.category_view,
        half_life_ms=w.half_life,
        scale=w.scale,
    )


def policy_from(cfg: IntentScoringConfig) -> BrowsePolicy:
    b = cfg.browse
    return BrowsePolicy(
        min_product_views=b.min_product_views,
        min_category_views=b.min_category_views,
        high_intent_threshold=b.high_intent_threshold,
        recent_products=b.recent_products,
        top_categories=b.top_categories,
    )


def build(env: StreamExecutionEnvironment, cfg: IntentScoringConfig, source: Source, sinks: JobSinks) -> DataStream:
    """Wire the job; returns the trigger stream."""
    events, rejected = parsed_events(env, cfg.kafka, source, cfg.topics.events, cfg.event_time, f"{cfg.job_name}.parse")
    scored = (
        events.key_by(lambda event: event[0], key_type=Types.STRING())
        .process(
            IntentSessions(
                weights=weights_from(cfg),
                policy=policy_from(cfg),
                gap_ms=cfg.session.gap,
                redis_url=cfg.redis.url,
                key_prefix=cfg.redis.key_prefix,
                ttl_ms=cfg.redis.profile_ttl,
                stage=cfg.job_name,
            ),
            output_type=Types.STRING(),
        )
        .uid("sessions")
    )
    scored.sink_to(sinks.triggers).uid("triggers-sink")
    traits = events.flat_map(
        WriteTraits(cfg.redis.url, cfg.redis.key_prefix, cfg.redis.profile_ttl), output_type=Types.STRING()
    ).uid("traits")
    traits.sink_to(discarding_sink()).uid("traits-end")
    rejected.union(scored.get_side_output(LATE)).sink_to(sinks.dead_letter).uid("dead-letter-sink")
    return scored


def main(argv: list[str] | None = None) -> None:
    run_job(argv, __doc__, DEFAULT_CONFIG, IntentScoringConfig, build)


if __name__ == "__main__":
    main()
