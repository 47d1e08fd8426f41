"""The clickstream job: abandoned carts, sessions, scores and traits, one keyed step per person, profiles in Redis.

clickstream.events ─► RouteEvents ─┬──────────── by person ─────────────┬─► ClickstreamFunction ─► email.triggers
  (watermarks from the  │          └─ links, anonymous cart events ─►  │     cart: reminders (udfs/cart.py)
   record timestamp)    │             FollowLogins (by device) ─────────┘     sessions: scores, browse triggers
                        └─ bad ─► clickstream.dlq ◄── late, bad cart ──────    traits; one Redis write per event

Every event is parsed once by ``RouteEvents`` and reaches ``ClickstreamFunction`` keyed by its person; only
identify/alias links and the cart events of browsers not yet known to be a person's also pass the login step
keyed by device (udfs/identity.py), which moves an anonymous cart to the person at login. Event time comes
from the Kafka record timestamp, which the collector sets to the event's time, so the Kafka source makes the
watermarks itself, per partition; a bounded run (``--bounded``: the demo, replays) makes none and decides
everything at the end of its input, in event-time order, so nothing in it is late.

Run: ``python jobs/clickstream.py --config flink-conf/jobs/clickstream.yaml`` (embedded local cluster) or
``flink run -py jobs/clickstream.py ...`` on a cluster.

Where state could leak, and what clears it: a cart nobody touches again keeps its state until the last reminder
fires, then until ``cart.state_ttl``; a person who only buys keeps a cooldown marker until ``state_ttl``; a
browser that never logs in keeps its cart events in FollowLogins until ``state_ttl``; open sessions are cleared
when they close; the profile hash expires after ``redis.profile_ttl`` of silence.
"""

from __future__ import annotations

import logging

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Source

from connectors.kafka import partition_count
from connectors.topic_check import warn_if_event_time_lost
from jobs.config import ClickstreamConfig, EventTimeSettings
from jobs.runner import JobSinks, run_job
from udfs.flink.clickstream import ClickstreamFunction, ClickstreamPolicy
from udfs.flink.identity import FollowLogins
from udfs.flink.keyed import keyed_by_first_field
from udfs.flink.parse import DEAD_LETTER, LATE, LOGINS, RouteEvents, keyed_event_type, routed_event_type

__all__ = ["DEFAULT_CONFIG", "build", "main", "policy_from", "watermarks"]

DEFAULT_CONFIG = "flink-conf/jobs/clickstream.yaml"

log = logging.getLogger(__name__)


def policy_from(cfg: ClickstreamConfig) -> ClickstreamPolicy:
    return ClickstreamPolicy(
        cart=cfg.cart.to_policy(),
        weights=cfg.weights.to_weights(),
        browse=cfg.browse.to_policy(),
        session_gap_ms=cfg.session.gap,
        cart_state_ttl_ms=cfg.cart.state_ttl,
    )


def watermarks(event_time: EventTimeSettings, bounded: bool) -> WatermarkStrategy:
    """Made by the Kafka source from the record timestamps, per partition.

    A bounded run makes none: it ends with Flink's final watermark, so its events are judged by their own times
    alone, even when a live collector's heartbeats stamped "now" sit in the topic before an old replay.
    """
    if bounded:
        return WatermarkStrategy.no_watermarks()
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(event_time.max_out_of_orderness))
    return strategy.with_idleness(Duration.of_millis(event_time.idleness))


def build(env: StreamExecutionEnvironment, cfg: ClickstreamConfig, source: Source, sinks: JobSinks) -> DataStream:
    """Wire the job; returns the trigger stream (tests may attach more to it)."""
    if cfg.kafka.parallelism_from_partitions:
        partitions = partition_count(cfg.kafka, cfg.topics.events)
        if partitions is not None and partitions > env.get_parallelism():
            log.info("%s has %d partitions: running with parallelism %d", cfg.topics.events, partitions, partitions)
            env.set_parallelism(partitions)
    if not cfg.kafka.bounded:
        warn_if_event_time_lost(cfg.kafka.bootstrap_servers, cfg.topics.events)
    raw = env.from_source(source, watermarks(cfg.event_time, cfg.kafka.bounded), cfg.topics.events)
    routed = raw.uid("events-source").process(
        RouteEvents(stage=f"{cfg.job_name}.parse", follow_logins=cfg.cart.follow_logins),
        output_type=keyed_event_type(),
    )
    routed = routed.uid("parse")
    to_people = routed
    if cfg.cart.follow_logins:
        moved = (
            keyed_by_first_field(routed.get_side_output(LOGINS), Types.STRING(), routed_event_type())
            .process(
                FollowLogins(max_events=cfg.cart.max_anonymous_events, state_ttl_ms=cfg.cart.state_ttl),
                output_type=keyed_event_type(),
            )
            .uid("follow-logins")
        )
        to_people = routed.union(moved)
    people = (
        keyed_by_first_field(to_people, Types.STRING(), routed_event_type())
        .process(
            ClickstreamFunction(
                policy=policy_from(cfg),
                redis_url=cfg.redis.url,
                key_prefix=cfg.redis.key_prefix,
                profile_ttl_ms=cfg.redis.profile_ttl,
                stage=cfg.job_name,
                write_batch=cfg.profile_writes.batch,
                write_linger_ms=cfg.profile_writes.linger,
            ),
            output_type=Types.STRING(),
        )
        .uid("people")
    )
    people.sink_to(sinks.triggers).uid("triggers-sink")
    dead_letters = routed.get_side_output(DEAD_LETTER).union(
        people.get_side_output(DEAD_LETTER), people.get_side_output(LATE)
    )
    dead_letters.sink_to(sinks.dead_letter).uid("dead-letter-sink")
    return people


def main(argv: list[str] | None = None) -> None:
    run_job(argv, __doc__, DEFAULT_CONFIG, ClickstreamConfig, build)


if __name__ == "__main__":
    main()
