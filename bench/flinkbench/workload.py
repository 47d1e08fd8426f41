"""The benchmark's input: demo/clickstream.py's seeded shoppers, produced to a fresh topic, and what must come out.

Every field derives from the shopper's number, the run tag and a fixed start time, so two benchmark runs
send byte-identical traffic. The four stories of the generator tell us the expected outputs exactly:
cart reminders for ``abandons`` and ``changes`` shoppers, none for ``buys`` and ``browses``; the intent job's
triggers come from the same pure functions the job calls (``udfs.intent``), applied per shopper.

After the shoppers, one "clock tick" page view per partition, two days of event time later, moves every
partition's watermark past every reminder and session end. So reminders and session-end triggers fire while
the stream runs, as they would in production, instead of in the end-of-input flush of a bounded run (which
behaves differently in thread mode: see BENCHMARKS.md). ``--no-clock-tick`` leaves them out.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from demo.clickstream import events_of, iso, sample_clickstream, shoppers
from flinkbench.jobrun import JobOutputs
from jobs.config import ClickstreamConfig, load_config
from sandbox.settings import PROJECT_ROOT
from udfs.events import parse_event
from udfs.intent import session_end_triggers, summarize

__all__ = [
    "START_MS",
    "Expected",
    "Workload",
    "check_outputs",
    "create_topics",
    "expected_outputs",
    "produce",
    "workload",
]

# 2026-01-01T00:00:00Z: a fixed event-time origin, so the traffic does not depend on when it is generated.
START_MS = 1_767_225_600_000
PRODUCE_TIMEOUT_S = 120.0
ADMIN_TIMEOUT_MS = 30_000

_KEEP_FOREVER = {"retention.ms": "-1"}
_STORY_PRODUCT_CYCLE = 20  # len(STORIES) × len(CATALOG)

Progress = Callable[[int, int], None]


TICK_AFTER_MS = 2 * 86_400_000  # past the last reminder (24 h after the last change) and any session end


@dataclass(frozen=True)
class Workload:
    """One seeded clickstream: its size (shopper events; ticks not counted), who is in it, where it went."""

    run_tag: str
    shoppers: int
    events: int
    topic: str = ""
    ticks: int = 0


def workload(target_events: int, run_tag: str) -> Workload:
    """The smallest whole number of story × product cycles (20 shoppers) giving at least ``target_events``.

    The count of events per shopper is read from the generator, not assumed, so the workload follows
    demo/clickstream.py when its stories change.
    """
    per_cycle = len(sample_clickstream(_STORY_PRODUCT_CYCLE, run_tag, START_MS))
    cycles = max(1, -(-target_events // per_cycle))
    return Workload(run_tag=run_tag, shoppers=cycles * _STORY_PRODUCT_CYCLE, events=cycles * per_cycle)


def create_topics(bootstrap: str, names: dict[str, int]) -> None:
    """Create topics (name → partitions); fails if one exists, so a run never reads someone else's data.

    They keep records for ever (``retention.ms=-1``): the jobs' sinks stamp each record with its event time,
    and the workload's event times lie months in the past, so under the broker's 7-day, timestamp-based
    retention a rolled segment of triggers could be deleted before the benchmark counts it.
    """
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="cartpulse-bench", request_timeout_ms=ADMIN_TIMEOUT_MS
    )
    try:
        admin.create_topics(
            [
                NewTopic(name=n, num_partitions=p, replication_factor=1, topic_configs=_KEEP_FOREVER)
                for n, p in names.items()
            ]
        )
    finally:
        admin.close()


def produce(
    bootstrap: str, topic: str, load: Workload, partitions: int, clock_tick: bool, progress: Progress | None = None
) -> Workload:
    """Send the clickstream keyed by person, in event-time order, as the collector would; wait for every ack."""
    events = sample_clickstream(load.shoppers, load.run_tag, START_MS)
    assert len(events) == load.events, (len(events), load.events)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    try:
        for n, event in enumerate(events, 1):
            body = json.dumps(event, separators=(",", ":")).encode()
            # stamped with the event time, as the collector stamps its records (the floor's watermarks read it)
            producer.send(topic, key=event["userId"].encode(), value=body, timestamp_ms=_ms(event["timestamp"]))
            if progress is not None and n % 10_000 == 0:
                progress(n, len(events))
        ticks = [_tick(load.run_tag, p, _ms(events[-1]["timestamp"]) + TICK_AFTER_MS) for p in range(partitions)]
        for partition, tick in enumerate(ticks if clock_tick else []):
            producer.send(
                topic, value=json.dumps(tick).encode(), partition=partition, timestamp_ms=_ms(str(tick["timestamp"]))
            )
        producer.flush(timeout=PRODUCE_TIMEOUT_S)
    finally:
        producer.close(timeout=PRODUCE_TIMEOUT_S)
    count = partitions if clock_tick else 0
    return Workload(run_tag=load.run_tag, shoppers=load.shoppers, events=load.events, topic=topic, ticks=count)


def _ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def _tick(run_tag: str, partition: int, t_ms: int) -> dict[str, object]:
    """A page view that only moves event time forward: no cart, and one page view starts no trigger."""
    person = f"{run_tag}-clock-{partition}"
    return {
        "type": "page",
        "name": "Clock",
        "userId": person,
        "messageId": f"{person}-{t_ms}",
        "timestamp": iso(t_ms),
        "properties": {"path": "/"},
    }


@dataclass(frozen=True)
class Expected:
    """What a correct run of each job writes for a workload."""

    cart_triggers: Counter[str]
    intent_triggers: Counter[str]
    cart_profiles: int
    intent_profiles: int


def expected_outputs(load: Workload) -> Expected:
    """Cart reminders by story (reminders 1 and 2 per abandoned cart, as shipped); intent triggers from
    ``udfs.intent``; cart profiles for everyone who touched a cart, intent profiles for everyone."""
    people = shoppers(load.shoppers, load.run_tag, START_MS)
    stories = Counter(s.story for s in people)
    intent: Counter[str] = Counter()
    for n in range(len(people)):
        intent.update(_intent_triggers(n % _STORY_PRODUCT_CYCLE))
    return Expected(
        cart_triggers=Counter({f"cart_abandonment#{i}": stories["abandons"] + stories["changes"] for i in (1, 2)}),
        intent_triggers=intent,
        cart_profiles=load.shoppers - stories["browses"],
        intent_profiles=load.shoppers + load.ticks,
    )


@cache
def _intent_triggers(position: int) -> tuple[str, ...]:
    """Trigger types of the session of shopper number ``position`` (mod the story × product cycle).

    A shopper's events depend only on its story (number mod 4) and products (number mod 5), never on its
    start time beyond a shift, so one session per position in the 20-shopper cycle is enough.
    """
    cfg = load_config(PROJECT_ROOT / "flink-conf/jobs/clickstream.yaml", ClickstreamConfig)
    probe = shoppers(_STORY_PRODUCT_CYCLE, "probe", START_MS)[position]
    events = [parse_event(json.dumps(e)) for e in events_of(probe, position, "probe")]
    summary = summarize(probe.person_id, events, cfg.weights.to_weights(), cfg.browse.to_policy())
    window_end = max(e.event_time_ms for e in events) + cfg.session.gap
    return tuple(t.trigger_type for t in session_end_triggers(summary, window_end, cfg.browse.to_policy()))


def check_outputs(job: str, expected: Expected, outputs: JobOutputs) -> list[str]:
    """What is wrong with a run's outputs (empty: it computed exactly what it should)."""
    if job == "floor":
        return []  # it writes nothing
    # everyone has a profile (scores); cart reminders and browse triggers alike
    triggers, profiles = expected.cart_triggers + expected.intent_triggers, expected.intent_profiles
    problems = []
    if Counter(outputs.triggers) != triggers:
        problems.append(f"triggers {dict(sorted(outputs.triggers.items()))}, expected {dict(sorted(triggers.items()))}")
    if outputs.distinct_trigger_ids != sum(outputs.triggers.values()):
        problems.append(f"{sum(outputs.triggers.values()) - outputs.distinct_trigger_ids} duplicate trigger ids")
    if outputs.dead_letters:
        problems.append(f"{outputs.dead_letters} dead letters: {outputs.dead_letter_reasons}")
    if outputs.profiles != profiles:
        problems.append(f"{outputs.profiles} profiles, expected {profiles}")
    return problems
