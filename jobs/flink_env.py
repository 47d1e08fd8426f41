"""Builds a StreamExecutionEnvironment from a job config's ``flink:`` options.

Takes care of the PyFlink 2.x traps once: the Python worker must run our interpreter
(``python.executable``), thread mode must find our site-packages (``python.pythonpath``), and the
Kafka connector jar must be on the job's class path (``pipeline.jars``).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment

__all__ = ["connector_jars", "make_env", "state_options"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_JARS_DIR = PROJECT_ROOT / ".sandbox" / "jars" / "flink"


def connector_jars() -> list[Path]:
    """The Kafka connector jar: ``$FLINK_CONNECTOR_JARS`` (colon-separated) or the one ``make jars`` fetched.

    ``FLINK_CONNECTOR_JARS=provided`` means the cluster already has it (``flink run --jarfile``, or the jar in
    Flink's ``lib/``), so the job adds none.
    """
    listed = os.environ.get("FLINK_CONNECTOR_JARS")
    if listed == "provided":
        return []
    jars = [Path(p) for p in listed.split(":") if p] if listed else sorted(_DEFAULT_JARS_DIR.glob("*.jar"))
    missing = [str(j) for j in jars if not j.is_file()]
    if not jars or missing:
        raise SystemExit(
            f"The Flink Kafka connector jar is missing ({', '.join(missing) or _DEFAULT_JARS_DIR}); "
            "run 'make jars' or set FLINK_CONNECTOR_JARS to its path."
        )
    return jars


def state_options(job_name: str, options: Mapping[str, object]) -> dict[str, str]:
    """Where the job keeps its checkpoints and savepoints, and that they outlive a cancel: one folder pair
    per job (jobs/recovery.py resumes from them), the job config's ``flink:`` section winning."""
    state = PROJECT_ROOT / ".sandbox"
    defaults = {
        "execution.checkpointing.dir": (state / "checkpoints" / job_name).as_uri(),
        "execution.checkpointing.savepoint-dir": (state / "savepoints" / job_name).as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
    }
    return {key: _flink_value(options.get(key, value)) for key, value in defaults.items()}


def make_env(job_name: str, options: Mapping[str, object]) -> StreamExecutionEnvironment:
    """An environment for ``job_name`` with ``options`` (raw Flink keys) on top of our defaults."""
    conf = Configuration()
    defaults: dict[str, str] = {
        "python.executable": sys.executable,
        "pipeline.name": job_name,
        "pipeline.jars": ";".join(j.resolve().as_uri() for j in connector_jars()),  # empty: none to add
        **state_options(job_name, options),
    }
    if not defaults["pipeline.jars"]:
        del defaults["pipeline.jars"]
    merged = {**defaults, **{key: _flink_value(value) for key, value in options.items()}}
    if merged.get("python.execution-mode") == "thread" and "python.pythonpath" not in merged:
        merged["python.pythonpath"] = sysconfig.get_paths()["purelib"]
    for key, value in merged.items():
        conf.set_string(key, value)
    return StreamExecutionEnvironment.get_execution_environment(conf)


def _flink_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
