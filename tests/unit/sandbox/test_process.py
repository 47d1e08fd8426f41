"""The sandbox's process handling: a busy port and a crashing service each get one clear sentence."""

from __future__ import annotations

import json
import socket
import sys
import time

import pytest

from sandbox.process import ManagedProcess, ServiceError


def _process(tmp_path, argv, port):
    return ManagedProcess(
        name="svc",
        argv=argv,
        run_dir=tmp_path / "run",
        logs_dir=tmp_path / "logs",
        host="127.0.0.1",
        port=port,
        start_timeout_s=5,
    )


def test_busy_port_is_reported_by_name(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServiceError, match=f"svc cannot start: port {port} .* already in use"):
            _process(tmp_path, [sys.executable, "-c", "pass"], port).start()


def test_a_service_that_exits_shows_its_log(tmp_path):
    crash = [sys.executable, "-c", "import sys; print('bad config line 3'); sys.exit(3)"]
    with pytest.raises(ServiceError, match=r"(?s)svc exited with code 3 while starting.*bad config line 3"):
        _process(tmp_path, crash, _free_port()).start()


def test_start_is_idempotent_and_stop_stops_only_ours(tmp_path):
    port = _free_port()
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    svc = _process(tmp_path, server, port)
    assert svc.start() is True
    assert svc.start() is False
    assert svc.stop() is True
    assert svc.is_running() is False
    assert svc.stop() is False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_java_says_how_to_fix_it(monkeypatch, tmp_path):
    from sandbox.preflight import require_java

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceError, match="Java was not found on PATH; install a JDK 17 or newer"):
        require_java()


def test_old_java_is_refused(monkeypatch, tmp_path):
    from sandbox.preflight import require_java

    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceError, match="is Java 11, but Kafka 4 and Flink 2 need Java 17"):
        require_java()


def test_stopping_what_a_session_started_never_stops_what_it_found_running(tmp_path, monkeypatch):
    """A test session that found every service up (``make up``) started nothing and must stop nothing."""
    from sandbox import services
    from sandbox.settings import load_settings

    stopped: list[str] = []
    monkeypatch.setattr(
        services, "_describe", lambda name, s: type("P", (), {"stop": lambda self: stopped.append(name) or True})()
    )
    services.stop_all(load_settings(), [])
    assert stopped == []
    services.stop_all(load_settings(), ["kafka"])
    assert stopped == ["kafka"]


def test_a_service_started_after_a_local_pyflink_job_does_not_inherit_its_worker_variables(tmp_path, monkeypatch):
    """A local job's loopback worker writes its address into this process; a Flink cluster started with it
    ran its Python functions back in the test process instead of its own workers."""
    monkeypatch.setenv("PYTHON_LOOPBACK_SERVER_ADDRESS", "localhost:1")
    monkeypatch.setenv("PYFLINK_GATEWAY_DISABLED", "true")
    monkeypatch.setenv("JAVA_HOME", "")
    monkeypatch.setenv("CARTPULSE_PROBE", "kept")
    dump = tmp_path / "env.txt"
    script = (
        f"import json, os, time; json.dump(dict(os.environ), open({str(dump)!r} + '.tmp', 'w'));"
        f"os.rename({str(dump)!r} + '.tmp', {str(dump)!r}); time.sleep(30)"
    )
    writer = [sys.executable, "-c", script]
    svc = _process(tmp_path, writer, None)
    svc.start()
    try:
        for _ in range(100):
            if dump.exists():
                break
            time.sleep(0.05)
        seen = json.loads(dump.read_text())
    finally:
        svc.stop()
    assert seen["CARTPULSE_PROBE"] == "kept"
    assert not {"PYTHON_LOOPBACK_SERVER_ADDRESS", "PYFLINK_GATEWAY_DISABLED", "JAVA_HOME"} & seen.keys()


def test_the_cluster_environment_has_no_loopback_address(monkeypatch, tmp_path):
    from sandbox import cluster
    from sandbox.settings import load_settings

    monkeypatch.setenv("PYTHON_LOOPBACK_SERVER_ADDRESS", "localhost:1")
    monkeypatch.setenv("SANDBOX_HOME", str(tmp_path))
    env = cluster._env(load_settings(), tmp_path / "conf")
    assert "PYTHON_LOOPBACK_SERVER_ADDRESS" not in env
    assert env["FLINK_CONF_DIR"] == str(tmp_path / "conf")
