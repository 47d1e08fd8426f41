"""Whether a baseline run wrote what the benchmark's workload must produce: flinkbench's own check, read the way
the Flink benchmark reads the clickstream job's outputs (the baseline does that job's work).

Imports ``flinkbench`` as the other benchmark scripts do, so ``bench/`` must be on ``sys.path``
(``PYTHONPATH=bench:.``); the baseline itself does not need it.
"""

from __future__ import annotations

from pathlib import Path

from flinkbench.jobrun import JobOutputs, JobRun, collect_outputs
from flinkbench.workload import Expected, check_outputs

from sandbox.settings import SandboxSettings

__all__ = ["check_baseline", "collect_baseline_outputs"]


def check_baseline(expected: Expected, outputs: JobOutputs) -> list[str]:
    """What is wrong with the run's outputs (empty: exactly the clickstream job's triggers and profiles)."""
    return check_outputs("clickstream", expected, outputs)


def collect_baseline_outputs(
    settings: SandboxSettings, triggers_topic: str, dead_letter_topic: str, key_prefix: str
) -> JobOutputs:
    """The run's triggers, dead letters and profile hashes, read as the Flink benchmark reads a job's."""
    run = JobRun(
        job="baseline",
        tag="baseline",
        events_topic="",
        triggers_topic=triggers_topic,
        dead_letter_topic=dead_letter_topic,
        key_prefix=key_prefix,
        config_path=Path(),
        log_path=Path(),
    )
    return collect_outputs(run, settings)
