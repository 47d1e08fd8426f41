"""What the handlers need from Kafka and Redis, as protocols; the real clients and the twins implement them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = [
    "ClaimState",
    "DedupStore",
    "DeliveryListener",
    "EventProducer",
    "IdentityStore",
    "OutgoingRecord",
    "StateStore",
]


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One Kafka record: the key picks the partition (``personId`` for events).

    ``partition`` places it explicitly instead, and ``timestamp_ms`` sets its Kafka timestamp (default: when it
    is produced); heartbeats use both (:mod:`collector.heartbeat`). An event's record also carries its event
    time and arrival (epoch ms), which the heartbeats' event clock reads once the broker has it.
    """

    key: bytes | None
    value: bytes
    partition: int | None = None
    timestamp_ms: int | None = None
    event_time_ms: int | None = None
    received_at_ms: int | None = None


#: ``listener(topic, partition, record)``, called in the event loop when the broker acknowledged ``record``.
DeliveryListener = Callable[[str, int, OutgoingRecord], None]


class ClaimState(StrEnum):
    """The answer to "may I produce this messageId?".

    ``NEW``: yes, it is now claimed by this request. ``DONE``: it was produced within the window; drop it.
    ``PENDING``: another request is producing it right now; do not acknowledge, ask the client to retry.
    """

    NEW = "new"
    DONE = "done"
    PENDING = "pending"


class EventProducer(Protocol):
    """Puts records on a topic and reports each one's fate through a future."""

    def connected(self) -> bool: ...

    async def start(self) -> None: ...

    async def produce(self, topic: str, records: Sequence[OutgoingRecord]) -> list[asyncio.Future[None]]:
        """Hand the records to the producer; each future resolves when the broker acknowledged that record
        (``acks=all``) or fails with :class:`~collector.errors.BackendUnavailable`.

        :raises BackendUnavailable: when the broker cannot be reached at all; then nothing was handed over.
        """
        ...

    async def close(self) -> None: ...


class DedupStore(Protocol):
    """Two-phase claims on message ids, shared by every collector instance."""

    async def claim(self, message_ids: Sequence[str], token: str, pending_ttl_ms: int) -> list[ClaimState]: ...

    async def commit(self, message_ids: Sequence[str], window_ms: int) -> None: ...

    async def release(self, message_ids: Sequence[str], token: str) -> None: ...


class IdentityStore(Protocol):
    """The anonymousId → userId links made by identify and alias calls."""

    async def link(self, links: Sequence[tuple[str, str]], ttl_ms: int) -> None: ...

    async def resolve(self, ids: Sequence[str]) -> Mapping[str, str]: ...


class StateStore(DedupStore, IdentityStore, Protocol):
    """Both, from one connection (Redis), plus what the app needs to run it."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
