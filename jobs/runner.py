"""How a job script runs: arguments, a validated config, where to resume, the real Kafka connectors, execute.

Each job's ``main()`` calls :func:`run_job` with its own ``build``; tests call ``build`` with their own
sources and sinks. Started again with the same command, a job resumes from its newest retained snapshot
(:mod:`jobs.recovery`); ``--fresh`` starts it empty.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink, Source

from jobs.config import ConfigError, ModelT, _JobConfig, load_config

__all__ = ["JobSinks", "Launch", "kafka_job_sinks", "launch_env", "load_job_config", "parse_launch", "run_job"]


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


@dataclass(frozen=True)
class Launch(Generic[ModelT]):
    """A job's validated config and what its command line asked for."""

    cfg: ModelT
    fresh: bool = False
    rewind: bool = False
    bounded: bool = False


def parse_launch(argv: list[str] | None, doc: str, default_config: str, model: type[ModelT]) -> Launch[ModelT]:
    """The job's arguments and its validated config; a bad config exits with the message that names each bad key."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--config", default=default_config, help="job config YAML (default: %(default)s)")
    parser.add_argument("--bounded", action="store_true", help="stop at the offsets that are latest at start")
    parser.add_argument("--from-timestamp", type=int, metavar="MS", help="start at this Kafka record time (ms)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start with empty state, setting aside any checkpoints of an earlier run (default: resume from them)",
    )
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {"kafka.bounded": True} if args.bounded else {}
    if args.from_timestamp is not None:
        overrides |= {"kafka.starting_offsets": "timestamp", "kafka.start_timestamp_ms": args.from_timestamp}
    try:
        cfg = load_config(args.config, model, overrides)
    except ConfigError as exc:
        sys.exit(str(exc))
    bounded = bool(getattr(getattr(cfg, "kafka", None), "bounded", False))
    return Launch(cfg, fresh=args.fresh, rewind=args.from_timestamp is not None, bounded=bounded)


def load_job_config(argv: list[str] | None, doc: str, default_config: str, model: type[ModelT]) -> ModelT:
    """:func:`parse_launch`'s config alone."""
    return parse_launch(argv, doc, default_config, model).cfg


def launch_env(job_name: str, flink: dict[str, Any], launch: Launch[Any]) -> StreamExecutionEnvironment:
    """The job's environment, set to resume from its newest snapshot (or fresh, or refused: jobs/recovery.py)."""
    from jobs import recovery
    from jobs.flink_env import make_env, state_options

    dirs = state_options(job_name, flink)
    if launch.bounded:
        # A bounded replay reads a stretch of the topic once: it resumes nothing, and keeps its checkpoints apart
        # so that the unbounded job of the same name never resumes from them.
        apart = {recovery.CHECKPOINT_DIR: dirs[recovery.CHECKPOINT_DIR].rstrip("/") + ".bounded"}
        print(f"{job_name}: bounded run, starting empty", flush=True)
        return make_env(job_name, {**flink, **apart})
    options = {key: str(value) for key, value in flink.items()}
    state = recovery.find_state(dirs[recovery.CHECKPOINT_DIR], dirs[recovery.SAVEPOINT_DIR])
    plan = recovery.plan_start(options, state, fresh=launch.fresh, rewind=launch.rewind)
    moved = recovery.set_aside(plan.set_aside)
    print(f"{job_name}: {plan.message}" + (f" ({', '.join(map(str, moved))})" if moved else ""), flush=True)
    return make_env(job_name, {**flink, **plan.options})


def run_job(argv: list[str] | None, doc: str, default_config: str, model: type[ConfigT], build: BuildFn) -> None:
    from connectors.kafka import kafka_source

    launch = parse_launch(argv, doc, default_config, model)
    cfg = launch.cfg
    env = launch_env(cfg.job_name, cfg.flink, launch)
    build(env, cfg, kafka_source(cfg.kafka, cfg.topics.events), kafka_job_sinks(cfg))
    env.execute(cfg.job_name)
