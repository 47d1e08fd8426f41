"""Session fixtures for the real services: the sandbox's Kafka broker and Redis.

A service that is already up (``make up``) is used as it is and left running; a service this
session starts is stopped when the session ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from sandbox.settings import SandboxSettings, load_settings

if TYPE_CHECKING:
    import redis

    from tests.support.esp import SharedEsp
    from tests.support.kafka import KafkaTestClient


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxSettings]:
    from sandbox.services import start_all, stop_all

    settings = load_settings()
    result = start_all(settings)
    saved = {key: os.environ.get(key) for key in settings.env()}
    os.environ.update(settings.env())
    yield settings
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    stop_all(settings, result.started)


@pytest.fixture(scope="session")
def kafka(sandbox: SandboxSettings) -> Iterator[KafkaTestClient]:
    from tests.support.kafka import KafkaTestClient

    client = KafkaTestClient(sandbox.kafka_bootstrap)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_client(sandbox: SandboxSettings) -> Iterator[redis.Redis]:
    import redis

    client = redis.Redis.from_url(sandbox.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def run_id() -> str:
    """A short unique tag, so each test has its own topics, consumer groups and Redis keys."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def esp(sandbox: SandboxSettings) -> Iterator[SharedEsp]:
    """The session's ESP sandbox, its fault queues empty before and after the test."""
    from sandbox.esp import esp_sandbox_url
    from tests.support.esp import SharedEsp

    client = SharedEsp(esp_sandbox_url(sandbox))
    client.clear_faults()
    yield client
    client.clear_faults()
