"""The sandbox as a whole: which services exist, in what order they start, and their status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.collector import collector_port, collector_process
from sandbox.esp import esp_sandbox_port, esp_sandbox_process
from sandbox.kafka import create_topics, kafka_process
from sandbox.process import ManagedProcess, port_is_open
from sandbox.redis import redis_process
from sandbox.settings import SandboxSettings

__all__ = ["SERVICES", "StartResult", "start_all", "status", "stop_all"]

log = logging.getLogger(__name__)

ServiceFactory = Callable[[SandboxSettings], ManagedProcess]

# Start order; stop runs in reverse.
SERVICES: dict[str, ServiceFactory] = {
    "redis": redis_process,
    "kafka": kafka_process,
    "collector": collector_process,
    "esp": esp_sandbox_process,
}


@dataclass(frozen=True)
class StartResult:
    """What ``start_all`` did, so a caller stops only what it started."""

    started: list[str]
    already_running: list[str]
    topics_created: list[str]


def start_all(s: SandboxSettings, names: list[str] | None = None) -> StartResult:
    """Start the services in order; if one fails, stop the ones this call started, then raise."""
    started: list[str] = []
    running: list[str] = []
    try:
        for name in list(SERVICES) if names is None else names:
            process = SERVICES[name](s)
            (started if process.start() else running).append(name)
        topics = create_topics(s) if "kafka" in (names or SERVICES) else []
    except BaseException:
        stop_all(s, started)
        raise
    return StartResult(started=started, already_running=running, topics_created=topics)


def stop_all(s: SandboxSettings, names: list[str] | None = None) -> list[str]:
    """Stop ``names`` (all services when None; none for an empty list) in reverse start order."""
    stopped = []
    for name in reversed(list(SERVICES) if names is None else names):
        process = _describe(name, s)
        if process.stop():
            stopped.append(name)
    return stopped


def status(s: SandboxSettings) -> dict[str, str]:
    """Per service: 'up (pid N)', 'down', or 'port taken by another program'."""
    result = {}
    for name in SERVICES:
        process = _describe(name, s)
        pid = process.pid()
        if pid is not None:
            result[name] = f"up (pid {pid}) on {process.host}:{process.port}, log {process.log_file}"
        elif process.port is not None and port_is_open(process.host, process.port):
            result[name] = f"port {process.port} is served by a program the sandbox did not start"
        else:
            result[name] = "down"
    return result


def _describe(name: str, s: SandboxSettings) -> ManagedProcess:
    """A process description for stop/status, without the side effects of preparing a start."""
    ports = {"redis": s.redis_port, "kafka": s.kafka_port, "collector": collector_port(), "esp": esp_sandbox_port()}
    return ManagedProcess(name=name, argv=[], run_dir=s.run_dir, logs_dir=s.logs_dir, host=s.host, port=ports[name])
