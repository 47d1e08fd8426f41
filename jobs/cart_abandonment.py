"""Cart abandonment: finds carts left behind and emits one reminder trigger per step of the series.

clickstream.events ─► ParseEvents ─► watermarks ─► key_by(person) ─► CartAbandonmentFunction ─► email.triggers
                          │                                             │   └─ profile cart ─► Redis
                          └──────── bad records ────────────────────────┴─ bad + late ─► clickstream.dlq

Run: ``python jobs/cart_abandonment.py --config flink-conf/jobs/cart_abandonment.yaml`` (embedded
local cluster) or ``flink run -py jobs/cart_abandonment.py ...`` on a cluster.

Where state could leak, and what clears it: a cart nobody touches again keeps its state until the
last reminder fires, then until ``cart.state_ttl``; a person who only buys keeps a cooldown marker
until ``state_ttl``; the profile hash expires after ``redis.profile_ttl`` of silence.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink, Source

from jobs.config import CartAbandonmentConfig, ConfigError, load_config
from udfs.cart import CartPolicy, Reminder
from udfs.flink_adapters import DEAD_LETTER, LATE, PARSED_EVENT, CartAbandonmentFunction, EventTime, ParseEvents

DEFAULT_CONFIG = "flink-conf/jobs/cart_abandonment.yaml"


@dataclass(frozen=True)
class CartSinks:
    """Where the job's outputs go: triggers, and records it could not use (bad or late)."""

    triggers: Sink
    dead_letter: Sink


def policy_from(cfg: CartAbandonmentConfig) -> CartPolicy:
    return CartPolicy(
        reminders=tuple(Reminder(delay_ms=r.after, template=r.template) for r in cfg.cart.reminders),
        cooldown_ms=cfg.cart.cooldown,
        max_reminders=cfg.cart.max_reminders,
        dedup_window=cfg.cart.dedup_window,
    )


def build(env: StreamExecutionEnvironment, cfg: CartAbandonmentConfig, source: Source, sinks: CartSinks) -> DataStream:
    """Wire the job; returns the trigger stream (tests may attach more to it)."""
    raw = env.from_source(source, WatermarkStrategy.no_watermarks(), cfg.topics.events).uid("events-source")
    parsed = raw.process(ParseEvents(stage=f"{cfg.job_name}.parse"), output_type=PARSED_EVENT).uid("parse")
    watermarks = (
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(cfg.event_time.max_out_of_orderness))
        .with_idleness(Duration.of_millis(cfg.event_time.idleness))
        .with_timestamp_assigner(EventTime())
    )
    carts = (
        parsed.assign_timestamps_and_watermarks(watermarks)
        .key_by(lambda event: event[0], key_type=Types.STRING())
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
    rejected = parsed.get_side_output(DEAD_LETTER).union(
        carts.get_side_output(DEAD_LETTER), carts.get_side_output(LATE)
    )
    rejected.sink_to(sinks.dead_letter).uid("dead-letter-sink")
    return carts


def main(argv: list[str] | None = None) -> None:
    from connectors.kafka import kafka_sink, kafka_source
    from jobs.flink_env import make_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="job config YAML (default: %(default)s)")
    parser.add_argument("--bounded", action="store_true", help="stop at the offsets that are latest at start")
    parser.add_argument("--from-timestamp", type=int, metavar="MS", help="start at this Kafka record time (ms)")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {"kafka.bounded": True} if args.bounded else {}
    if args.from_timestamp is not None:
        overrides |= {"kafka.starting_offsets": "timestamp", "kafka.start_timestamp_ms": args.from_timestamp}
    try:
        cfg = load_config(args.config, CartAbandonmentConfig, overrides)
    except ConfigError as exc:
        sys.exit(str(exc))
    env = make_env(cfg.job_name, cfg.flink)
    sinks = CartSinks(
        triggers=kafka_sink(cfg.kafka, cfg.topics.triggers, exactly_once=True, transactional_id_prefix=cfg.job_name),
        dead_letter=kafka_sink(cfg.kafka, cfg.topics.dead_letter, exactly_once=False, transactional_id_prefix=""),
    )
    build(env, cfg, kafka_source(cfg.kafka, cfg.topics.events), sinks)
    env.execute(cfg.job_name)


if __name__ == "__main__":
    main()
