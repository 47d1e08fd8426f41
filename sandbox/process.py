"""Start, watch and stop one background service with a pid file and a log file.

Why our own: the sandbox must run where no Docker engine or supervisor exists, must stop only what it
started (``make down`` never kills a Redis the user ran by hand), and must say in one sentence why a
service did not come up, with the end of its log.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ManagedProcess", "ServiceError", "http_ok", "port_is_open", "process_environment", "tail"]

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], bool]


# Variables a local PyFlink job writes into its own process (its loopback worker copies the worker's
# environment in). A cluster or job started from that process with them would send its Python functions
# back to the finished job's loopback server (PYTHON_LOOPBACK_SERVER_ADDRESS) or skip starting a JVM.
PYFLINK_WORKER_VARIABLES = frozenset(
    {
        "PYTHON_LOOPBACK_SERVER_ADDRESS",
        "PYFLINK_GATEWAY_DISABLED",
        "PYFLINK_GATEWAY_PORT",
        "_PYFLINK_CONN_INFO_PATH",
        "_PYTHON_WORKER_MEMORY_LIMIT",
        "_PYTHON_WORKING_DIR",
        "BOOT_LOG_DIR",
        "SEMI_PERSISTENT_DIRECTORY",
        "WORKER_ID",
        "PIPELINE_OPTIONS",
        "LOGGING_API_SERVICE_DESCRIPTOR",
        "CONTROL_API_SERVICE_DESCRIPTOR",
        "FLINK_CONF_DIR",
    }
)


def process_environment() -> dict[str, str]:
    """This process's environment without what an in-process PyFlink job left in it."""
    env = {k: v for k, v in os.environ.items() if k not in PYFLINK_WORKER_VARIABLES}
    if not env.get("JAVA_HOME"):
        env.pop("JAVA_HOME", None)
    return env


class ServiceError(RuntimeError):
    """A sandbox service could not be started or stopped; the message says why and what to do."""


def port_is_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout_s: float = 2.0) -> ReadinessCheck:
    """A readiness check: ``url`` answers 200 (the services' ``/health``)."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 - the sandbox's own loopback
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return check


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


@dataclass
class ManagedProcess:
    """One service: its command, where it logs, the port it serves and how to tell it is ready."""

    name: str
    argv: Sequence[str]
    run_dir: Path
    logs_dir: Path
    host: str
    port: int | None
    ready: ReadinessCheck | None = None
    start_timeout_s: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid we started, if that process is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def is_ready(self) -> bool:
        if self.port is not None and not port_is_open(self.host, self.port):
            return False
        return self.ready() if self.ready else True

    def start(self) -> bool:
        """Start unless already running; returns True when this call started it."""
        if self.is_running():
            self.wait_ready()
            return False
        if self.port is not None and port_is_open(self.host, self.port):
            raise ServiceError(
                f"{self.name} cannot start: port {self.port} on {self.host} is already in use by another "
                f"program; stop that program or choose another port (see README, 'Ports')."
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log.info("starting %s on %s:%s (log: %s)", self.name, self.host, self.port, self.log_file)
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - argv is built by the sandbox, never from input
                list(self.argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env={**process_environment(), **self.env},
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        self.wait_ready(proc)
        return True

    def wait_ready(self, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise ServiceError(
                    f"{self.name} exited with code {proc.returncode} while starting; "
                    f"last lines of {self.log_file}:\n{tail(self.log_file)}"
                )
            if self.is_ready():
                return
            time.sleep(0.25)
        where = f" on {self.host}:{self.port}" if self.port else ""
        raise ServiceError(
            f"{self.name} did not become ready{where} within {self.start_timeout_s:.0f} s; "
            f"last lines of {self.log_file}:\n{tail(self.log_file)}"
        )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the process we started (its whole process group); returns True if it was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        log.info("stopping %s (pid %s)", self.name, pid)
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)
