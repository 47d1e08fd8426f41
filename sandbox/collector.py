"""The Segment-compatible collector (``python -m collector``), ready when ``GET /health`` answers."""

from __future__ import annotations

import sys

from sandbox.process import ManagedProcess, http_ok
from sandbox.settings import PROJECT_ROOT, SandboxSettings, env_port

__all__ = ["DEFAULT_COLLECTOR_PORT", "collector_port", "collector_process", "collector_url"]

DEFAULT_COLLECTOR_PORT = 8080


def collector_port() -> int:
    """``COLLECTOR_PORT``, default 8080 (the collector reads the same variable)."""
    return env_port("COLLECTOR_PORT", DEFAULT_COLLECTOR_PORT)


def collector_url(s: SandboxSettings) -> str:
    return f"http://{s.host}:{collector_port()}"


def collector_process(s: SandboxSettings) -> ManagedProcess:
    url = collector_url(s)

    return ManagedProcess(
        name="collector",
        argv=[sys.executable, "-m", "collector"],
        run_dir=s.run_dir,
        logs_dir=s.logs_dir,
        host=s.host,
        port=collector_port(),
        ready=http_ok(f"{url}/health"),
        start_timeout_s=30.0,
        env={**s.env(), "COLLECTOR_HOST": s.host, "COLLECTOR_PORT": str(collector_port())},
        cwd=PROJECT_ROOT,
    )
