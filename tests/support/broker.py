"""A Kafka broker of a test's own: same jars as the sandbox's, its own ports and data, so a test can stop it,
crash it and start it again without disturbing the sandbox (or anyone else's tests on it)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox.kafka import kafka_process
from sandbox.process import ManagedProcess
from sandbox.settings import SandboxSettings
from tests.support.collector import free_port

__all__ = ["crash", "private_broker"]


@contextmanager
def private_broker(sandbox: SandboxSettings, home: Path, topics_file: Path | None = None) -> Iterator[SandboxSettings]:
    """Settings for a broker under ``home`` (created here); the test starts and stops it with
    ``kafka_process(settings)``, and it is always stopped at the end, also when the test fails.

    :param topics_file: the topic list ``sandbox.kafka.create_topics`` makes (default: the sandbox's,
        ``flink-conf/topics.yaml``).
    """
    home.mkdir(parents=True)
    (home / "jars").symlink_to(sandbox.jars_dir)
    settings = SandboxSettings(
        home=home,
        host=sandbox.host,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=sandbox.redis_port,
        topics_file=topics_file or sandbox.topics_file,
    )
    try:
        yield settings
    finally:
        kafka_process(settings).stop()


def crash(broker: ManagedProcess) -> None:
    """SIGKILL the broker's process group (no controlled shutdown, like a lost machine) and reap it."""
    pid = broker.pid()
    assert pid is not None, f"{broker.name} is not running"
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    broker.stop(timeout_s=10.0)  # the group is gone: this only reaps the zombie and removes the pid file
