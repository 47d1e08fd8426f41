"""How a job script runs: arguments, a validated config, the real Kafka connectors, then execute.

Each job's ``main()`` calls :func:`run_job` with its own ``build``; tests call ``build`` with their own
sources and sinks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink, Source

from jobs.config import ConfigError, ModelT, _JobConfig, load_config

__all__ = ["JobSinks", "kafka_job_sinks", "load_job_config", "run_job"]

ConfigT = TypeVar("ConfigT", bound=_JobConfig)
BuildFn = Callable[[StreamExecutionEnvironment, Any, Source, "JobSinks"], Any]


@dataclass(frozen=True)
class JobSinks:
    """Where a job's outputs go: triggers, and the records it could not use (bad or late)."""

    triggers: Sink
    dead_letter: Sink


def kafka_job_sinks(cfg: _JobConfig) -> JobSinks:
    """Triggers exactly-once (Kafka transactions on checkpoints); dead letters at least once."""
    from connectors.kafka import kafka_sink

    return JobSinks(
        triggers=kafka_sink(cfg.kafka, cfg.topics.triggers, exactly_once=True, transactional_id_prefix=cfg.job_name),
        dead_letter=kafka_sink(cfg.kafka, cfg.topics.dead_letter, exactly_once=False, transactional_id_prefix=""),
    )


def load_job_config(argv: list[str] | None, doc: str, default_config: str, model: type[ModelT]) -> ModelT:
    """The job's arguments (``--config``, ``--bounded``, ``--from-timestamp``) and its validated config;
    a bad config exits with the message that names each bad key."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--config", default=default_config, help="job config YAML (default: %(default)s)")
    parser.add_argument("--bounded", action="store_true", help="stop at the offsets that are latest at start")
    parser.add_argument("--from-timestamp", type=int, metavar="MS", help="start at this Kafka record time (ms)")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {"kafka.bounded": True} if args.bounded else {}
    if args.from_timestamp is not None:
        overrides |= {"kafka.starting_offsets": "timestamp", "kafka.start_timestamp_ms": args.from_timestamp}
    try:
        return load_config(args.config, model, overrides)
    except ConfigError as exc:
        sys.exit(str(exc))


def run_job(argv: list[str] | None, doc: str, default_config: str, model: type[ConfigT], build: BuildFn) -> None:
    from connectors.kafka import kafka_source
    from jobs.flink_env import make_env

    cfg = load_job_config(argv, doc, default_config, model)
    env = make_env(cfg.job_name, cfg.flink)
    build(env, cfg, kafka_source(cfg.kafka, cfg.topics.events), kafka_job_sinks(cfg))
    env.execute(cfg.job_name)
