"""Cart abandonment: finds carts left behind and emits one reminder trigger per step of the series.

clickstream.events ─► ParseEvents ─► watermarks ─► key_by(device) ─► FollowLogins ─► key_by(person) ─►
    CartAbandonmentFunction ─► email.triggers        FollowLogins: a cart filled before login moves to the
      ├─ profile cart ─► Redis                          person at identify/alias (udfs/identity.py)
      └─ bad + late ─► clickstream.dlq ◄── bad records from ParseEvents

Run: ``python jobs/cart_abandonment.py --config flink-conf/jobs/cart_abandonment.yaml`` (embedded
local cluster) or ``flink run -py jobs/cart_abandonment.py ...`` on a cluster.

Where state could leak, and what clears it: a cart nobody touches again keeps its state until the
last reminder fires, then until ``cart.state_ttl``; a person who only buys keeps a cooldown marker
until ``state_ttl``; a browser that never logs in keeps its cart events in FollowLogins until ``state_ttl``;
the profile hash expires after ``redis.profile_ttl`` of silence.
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Source

from jobs.config import CartAbandonmentConfig
from jobs.event_front import parsed_events
from jobs.runner import JobSinks, run_job
from udfs.cart import CartPolicy, Reminder
from udfs.flink.cart import CartAbandonmentFunction
from udfs.flink.identity import FollowLogins
from udfs.flink.parse import DEAD_LETTER, LATE, parsed_event_type

DEFAULT_CONFIG = "flink-conf/jobs/cart_abandonment.yaml"


def policy_from(cfg: CartAbandonmentConfig) -> CartPolicy:
    return CartPolicy(
        reminders=tuple(Reminder(delay_ms=r.after, template=r.template) for r in cfg.cart.reminders),
        cooldown_ms=cfg.cart.cooldown,
        max_reminders=cfg.cart.max_reminders,
        dedup_window=cfg.cart.dedup_window,
    )


def build(env: StreamExecutionEnvironment, cfg: CartAbandonmentConfig, source: Source, sinks: JobSinks) -> DataStream:
    """Wire the job; returns the trigger stream (tests may attach more to it)."""
    events, rejected = parsed_events(env, cfg.kafka, source, cfg.topics.events, cfg.event_time, f"{cfg.job_name}.parse")
    if cfg.cart.follow_logins:
        events = (
            events.key_by(lambda event: event[3], key_type=Types.STRING())
            .process(
                FollowLogins(max_events=cfg.cart.max_anonymous_events, state_ttl_ms=cfg.cart.state_ttl),
                output_type=parsed_event_type(),
            )
            .uid("follow-logins")
        )
    carts = (
        events.key_by(lambda event: event[0], key_type=Types.STRING())
        .process(
            CartAbandonmentFunction(
                policy=policy_from(cfg),
                redis_url=cfg.redis.url,
                key_prefix=cfg.redis.key_prefix,
                profile_ttl_ms=cfg.redis.profile_ttl,
                state_ttl_ms=cfg.cart.state_ttl,
                stage=f"{cfg.job_name}.cart",
            ),
            output_type=Types.STRING(),
        )
        .uid("carts")
    )
    carts.sink_to(sinks.triggers).uid("triggers-sink")
    dead_letters = rejected.union(carts.get_side_output(DEAD_LETTER), carts.get_side_output(LATE))
    dead_letters.sink_to(sinks.dead_letter).uid("dead-letter-sink")
    return carts


def main(argv: list[str] | None = None) -> None:
    run_job(argv, __doc__, DEFAULT_CONFIG, CartAbandonmentConfig, build)


if __name__ == "__main__":
    main()
