"""A standalone Flink cluster from the pip-installed Flink, for ``flink run -py`` as on a real cluster.

The conf folder is the wheel's own (log4j files and all) with ``flink-conf/config.yaml`` on top, so the
cluster runs with the same settings a user deploys.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

from sandbox.process import ServiceError, port_is_open, process_environment, tail
from sandbox.settings import PROJECT_ROOT, SandboxSettings

__all__ = ["REST_PORT", "cluster_down", "cluster_up", "flink_home", "submit"]

REST_PORT = 8081
TASKMANAGERS = 3
START_TIMEOUT_S = 90.0


def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def _conf_dir(s: SandboxSettings) -> Path:
    conf = s.home / "flink-cluster" / "conf"
    if conf.exists():
        shutil.rmtree(conf)
    shutil.copytree(flink_home() / "conf", conf)
    shutil.copy(PROJECT_ROOT / "flink-conf" / "config.yaml", conf / "config.yaml")
    (conf / "masters").write_text(f"{s.host}:{REST_PORT}\n")
    # One slot per TaskManager, three of them: the clickstream job (parallelism 1) and the delivery job
    # (parallelism 2) both run thread mode, and PyFlink 2.2.1 runs one thread-mode job per TaskManager (README).
    (conf / "workers").write_text("localhost\n" * TASKMANAGERS)
    return conf


def _env(s: SandboxSettings, conf: Path) -> dict[str, str]:
    log_dir = s.logs_dir / "flink-cluster"
    log_dir.mkdir(parents=True, exist_ok=True)
    return {**process_environment(), **s.env(), "FLINK_CONF_DIR": str(conf), "FLINK_LOG_DIR": str(log_dir)}


def _marker(s: SandboxSettings) -> Path:
    return s.run_dir / "flink-cluster.started"


def _overview() -> dict[str, int] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{REST_PORT}/overview", timeout=2) as answer:  # noqa: S310
            return json.load(answer)
    except OSError:
        return None


def cluster_up(s: SandboxSettings) -> bool:
    """Start a JobManager and its TaskManagers; returns False if this sandbox's cluster was already up."""
    if _marker(s).exists() and _overview():
        return False
    if port_is_open(s.host, REST_PORT):
        raise ServiceError(f"Flink cluster cannot start: port {REST_PORT} is in use by another program; stop it first.")
    conf = _conf_dir(s)
    env = _env(s, conf)
    subprocess.run([str(flink_home() / "bin" / "start-cluster.sh")], env=env, check=True, capture_output=True)  # noqa: S603
    s.run_dir.mkdir(parents=True, exist_ok=True)
    _marker(s).write_text(str(conf))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        overview = _overview()
        if overview and overview.get("taskmanagers", 0) >= TASKMANAGERS:
            return True
        time.sleep(1)
    logs = sorted((s.logs_dir / "flink-cluster").glob("*.log"))
    raise ServiceError(
        f"the Flink cluster did not report {TASKMANAGERS} TaskManagers on port {REST_PORT} "
        f"within {START_TIMEOUT_S:.0f} s; "
        f"last lines of {logs[-1] if logs else 'its log'}:\n{tail(logs[-1]) if logs else ''}"
    )


def cluster_down(s: SandboxSettings) -> bool:
    marker = _marker(s)
    if not marker.exists():
        return False
    conf = Path(marker.read_text())
    subprocess.run([str(flink_home() / "bin" / "stop-cluster.sh")], env=_env(s, conf), check=False, capture_output=True)  # noqa: S603
    marker.unlink()
    return True


SHIPPED_PACKAGES = ("jobs", "udfs", "connectors")


def _source_zip(s: SandboxSettings) -> Path:
    """The job's code as one zip for ``-pyfs``; shipping the folders themselves would put their modules
    (``connectors/redis.py``) at the top of the path, shadowing the libraries of the same name."""
    target = s.home / "flink-cluster" / "cartpulse-src.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in SHIPPED_PACKAGES:
            for source in sorted((PROJECT_ROOT / package).rglob("*.py")):
                archive.write(source, source.relative_to(PROJECT_ROOT))
    return target


def _connector_jar(s: SandboxSettings) -> Path:
    jars = sorted((s.jars_dir / "flink").glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise ServiceError(f"no Flink Kafka connector jar in {s.jars_dir / 'flink'}; run 'make jars'.")
    return jars[-1]


def submit(s: SandboxSettings, script: str, config: str | Path, extra_args: list[str], detached: bool) -> int:
    """``flink run -py`` the way a user submits to their cluster: code shipped with -pyfs, our interpreter."""
    marker = _marker(s)
    if not marker.exists():
        raise ServiceError("no sandbox Flink cluster is running; run 'make cluster-up' first.")
    argv = [
        str(flink_home() / "bin" / "flink"),
        "run",
        *(["-d"] if detached else []),
        "-py", str(PROJECT_ROOT / script),
        "--jarfile", str(_connector_jar(s)),
        "-pyfs", str(_source_zip(s)),
        "-pyexec", sys.executable,
        "-pyclientexec", sys.executable,
        "--config", str(PROJECT_ROOT / config),
        *extra_args,
    ]  # fmt: skip
    env = {**_env(s, Path(marker.read_text())), "FLINK_CONNECTOR_JARS": "provided"}
    return subprocess.run(argv, env=env, cwd=PROJECT_ROOT, check=False).returncode  # noqa: S603


def main(argv: list[str] | None = None) -> int:
    """``python -m sandbox.cluster up|down|run [--bounded]``: behind make cluster-up / cluster-run / cluster-down."""
    import argparse

    from sandbox.jobs import JOBS
    from sandbox.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m sandbox.cluster", description=main.__doc__)
    parser.add_argument("command", choices=["up", "down", "run"])
    parser.add_argument("--bounded", action="store_true", help="run: wait for each job to drain its input")
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        if args.command == "up":
            started = cluster_up(settings)
            print(f"Flink cluster {'started' if started else 'already running'}: http://127.0.0.1:{REST_PORT}")
        elif args.command == "down":
            print("Flink cluster stopped" if cluster_down(settings) else "no sandbox Flink cluster was running")
        else:
            for name, (script, config) in JOBS.items():
                print(f"submitting {name} with flink run -py {script}")
                code = submit(settings, script, config, ["--bounded"] if args.bounded else [], not args.bounded)
                if code != 0:
                    print(f"error: flink run of {name} failed (exit {code})", file=sys.stderr)
                    return code
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
