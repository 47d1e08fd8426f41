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
            # A write reaches the AOF file (the OS's page cache) before its reply and everysec fsyncs once a
            # second, so a killed Redis (even SIGKILL) comes back with every acknowledged write unless a slow
            # fsync had made it postpone writing (up to 2 s); a lost machine may lose the last 1-2 s
            # (tests/integration/test_redis_restart.py). Fine for a sandbox; for the delivery ledger's claims in
            # production use appendfsync always (about 0.2 ms more per write, measured here).
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
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
