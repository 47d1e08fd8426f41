"""The Segment-compatible collector (``python -m collector``), ready when ``GET /health`` answers."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from sandbox.process import ManagedProcess
from sandbox.settings import PROJECT_ROOT, SandboxSettings

__all__ = ["DEFAULT_COLLECTOR_PORT", "collector_port", "collector_process", "collector_url"]

DEFAULT_COLLECTOR_PORT = 8080
_HEALTH_TIMEOUT_S = 2.0


def collector_port() -> int:
    """``COLLECTOR_PORT``, default 8080 (the collector reads the same variable)."""
    raw = os.environ.get("COLLECTOR_PORT", str(DEFAULT_COLLECTOR_PORT))
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"COLLECTOR_PORT={raw!r} is not a port number; set it to an integer such as 8080.") from None
    if not 0 < port < 65536:
        raise SystemExit(f"COLLECTOR_PORT={port} is outside 1-65535; set it to a free port such as 8080.")
    return port


def collector_url(s: SandboxSettings) -> str:
    return f"http://{s.host}:{collector_port()}"


def collector_process(s: SandboxSettings) -> ManagedProcess:
    url = collector_url(s)

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=_HEALTH_TIMEOUT_S) as answer:  # noqa: S310 - loopback
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return ManagedProcess(
        name="collector",
        argv=[sys.executable, "-m", "collector"],
        run_dir=s.run_dir,
        logs_dir=s.logs_dir,
        host=s.host,
        port=collector_port(),
        ready=healthy,
        start_timeout_s=30.0,
        env={**s.env(), "COLLECTOR_HOST": s.host, "COLLECTOR_PORT": str(collector_port())},
        cwd=PROJECT_ROOT,
    )
