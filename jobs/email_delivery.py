"""Email delivery: trigger records become emails, each decision on record.

email.triggers ─► key_by(person) ─► DeliveryFunction ─► email.deliveries  (sent / suppressed / deferred / failed)
                                     │  guardrails: holdout, consent, still valid, frequency cap, quiet hours
                                     │  claim in Redis ─► template ─► provider (retries, breaker, fallback)
                                     └─► email.dlq  (unusable triggers; permanent refusals with the answer)

Why a Flink job (and not a plain consumer): deferred emails (quiet hours, frequency caps, provider
outages) wait in keyed state on processing-time timers that survive restarts through checkpoints,
and the outcomes go to email.deliveries exactly once. Calls to providers are synchronous inside the
operator with a small retry budget; past it the email is deferred, never dropped.

Where state could leak: a person's pending emails stay until sent, suppressed or given up
(``retries.give_up_after``); nothing else is kept per person.
"""

from __future__ import annotations

from pathlib import Path

from pyflink.common import Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink, Source

from jobs.config import DeliveryConfig
from udfs.flink.delivery import DEAD_LETTER, TRIGGER_ROW, DeliveryFunction, KeyTriggers

DEFAULT_CONFIG = "flink-conf/jobs/email_delivery.yaml"


def build(
    env: StreamExecutionEnvironment, cfg: DeliveryConfig, source: Source, deliveries: Sink, dead_letter: Sink
) -> DataStream:
    triggers = env.from_source(source, WatermarkStrategy.no_watermarks(), cfg.topics.triggers).uid("triggers-source")
    keyed = triggers.process(KeyTriggers(f"{cfg.job_name}.parse"), output_type=TRIGGER_ROW).uid("key-triggers")
    outcomes = (
        keyed.key_by(lambda row: row[0], key_type=Types.STRING())
        .process(DeliveryFunction(cfg), output_type=Types.STRING())
        .uid("deliver")
    )
    outcomes.sink_to(deliveries).uid("deliveries-sink")
    keyed.get_side_output(DEAD_LETTER).union(outcomes.get_side_output(DEAD_LETTER)).sink_to(dead_letter).uid("dlq")
    return outcomes


def main(argv: list[str] | None = None) -> None:
    from connectors.kafka import kafka_sink, kafka_source
    from jobs.runner import launch_env, parse_launch

    launch = parse_launch(argv, __doc__, DEFAULT_CONFIG, DeliveryConfig)
    cfg = launch.cfg
    # The operator reads templates and the catalog where it runs: send it absolute paths (README, "Running
    # on a Flink cluster").
    catalog = str(Path(cfg.catalog_file).resolve()) if cfg.catalog_file else None
    cfg = cfg.model_copy(update={"templates_dir": str(Path(cfg.templates_dir).resolve()), "catalog_file": catalog})
    env = launch_env(cfg.job_name, cfg.flink, launch)
    deliveries = kafka_sink(cfg.kafka, cfg.topics.deliveries, exactly_once=True, transactional_id_prefix=cfg.job_name)
    dead_letter = kafka_sink(cfg.kafka, cfg.topics.dead_letter, exactly_once=False, transactional_id_prefix="")
    build(env, cfg, kafka_source(cfg.kafka, cfg.topics.triggers), deliveries, dead_letter)
    env.execute(cfg.job_name)


if __name__ == "__main__":
    main()
