"""``make run``: the pipeline's Flink jobs on the embedded local cluster, in the background.

Each job is its own process (its own MiniCluster), logging to ``.sandbox/logs/<job>.log``. For a
real cluster use ``flink run -py`` instead (README, 'Running on a Flink cluster').
"""

from __future__ import annotations

import sys

from sandbox.process import ManagedProcess
from sandbox.settings import PROJECT_ROOT, SandboxSettings

__all__ = ["CLICKSTREAM_JOBS", "DELIVERY_JOBS", "JOBS", "job_processes"]

# job name → (entry script, job config). The clickstream job reads clickstream.events and writes triggers;
# the delivery job reads those triggers.
CLICKSTREAM_JOBS: dict[str, tuple[str, str]] = {
    "clickstream": ("jobs/clickstream.py", "flink-conf/jobs/clickstream.yaml"),
}
DELIVERY_JOBS: dict[str, tuple[str, str]] = {
    "email_delivery": ("jobs/email_delivery.py", "flink-conf/jobs/email_delivery.yaml"),
}
JOBS = {**CLICKSTREAM_JOBS, **DELIVERY_JOBS}


def job_processes(s: SandboxSettings) -> list[ManagedProcess]:
    return [
        ManagedProcess(
            name=f"job-{name}",
            argv=[sys.executable, str(PROJECT_ROOT / script), "--config", str(PROJECT_ROOT / config)],
            run_dir=s.run_dir,
            logs_dir=s.logs_dir,
            host=s.host,
            port=None,
            start_timeout_s=5.0,
            env={**s.env(), "FLINK_LOG_DIR": str(s.logs_dir / "flink")},
            cwd=PROJECT_ROOT,
        )
        for name, (script, config) in JOBS.items()
    ]
