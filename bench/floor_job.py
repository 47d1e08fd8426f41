"""The engine floor: the least a keyed PyFlink job on the clickstream can do, to measure the product against.

    KafkaSource (watermarks from the Kafka record timestamp, made on the Java side) ─► Python map reading the
    person from the JSON ─► key_by(person) ─► one KeyedProcessFunction that reads and writes a ValueState and
    sets an event-time timer per event ─► discard

Same config file, Flink options, parallelism and execution mode as the job it is compared with (``--config``
takes the clickstream job's YAML; only ``kafka``, ``topics.events``, ``event_time`` and ``flink`` are used), so
the ratio product ÷ floor says what our logic and I/O cost on top of the engine's own per-record price.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from connectors.discard import discarding_sink
from connectors.kafka import kafka_source, partition_count
from jobs.config import ClickstreamConfig, load_config
from jobs.flink_env import make_env

__all__ = ["CountPerPerson", "main", "person_of"]


def person_of(raw: str) -> str:
    """The key the product's jobs use: the collector's person id, else the user, else the browser."""
    doc = json.loads(raw)
    return str(doc.get("personId") or doc.get("userId") or doc.get("anonymousId") or "")


class CountPerPerson(KeyedProcessFunction):
    """Per person: one ValueState read and written, one event-time timer set, per event; emits nothing."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.seen = runtime_context.get_state(ValueStateDescriptor("seen", Types.LONG()))

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        self.seen.update((self.seen.value() or 0) + 1)
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 60_000)
        yield from ()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        yield from ()  # process mode needs an iterable back


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a clickstream job's config YAML")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, ClickstreamConfig)
    kafka, topic = cfg.kafka, cfg.topics.events
    env = make_env(cfg.job_name, cfg.flink)
    partitions = partition_count(kafka, topic) if kafka.parallelism_from_partitions else None
    if partitions is not None and partitions > env.get_parallelism():
        env.set_parallelism(partitions)  # as the product's jobs do (jobs/clickstream.py)
    out_of_order = Duration.of_millis(cfg.event_time.max_out_of_orderness)
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(out_of_order)
    raw = env.from_source(kafka_source(kafka, topic), watermarks, "events").uid("events-source")
    people = raw.map(person_of, output_type=Types.STRING())
    counted = people.key_by(lambda person: person, key_type=Types.STRING()).process(
        CountPerPerson(), output_type=Types.STRING()
    )
    counted.sink_to(discarding_sink())
    env.execute(cfg.job_name)


if __name__ == "__main__":
    main()
