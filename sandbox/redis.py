"""Debian's redis-server on loopback, with its data under the sandbox folder."""

from __future__ import annotations

from sandbox.preflight import require_redis_server
from sandbox.process import ManagedProcess
from sandbox.settings import SandboxSettings

__all__ = ["redis_process"]


def redis_process(s: SandboxSettings) -> ManagedProcess:
    binary = require_redis_server()
    data_dir = s.data_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        name="redis",
        argv=[
            binary,
            "--bind",
            s.host,
            "--port",
            str(s.redis_port),
            "--dir",
            str(data_dir),
            "--daemonize",
            "no",
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "yes",
        ],
        run_dir=s.run_dir,
        logs_dir=s.logs_dir,
        host=s.host,
        port=s.redis_port,
        start_timeout_s=20.0,
    )
