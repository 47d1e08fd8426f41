"""In-memory twins of the Kafka producer and the Redis store, for unit tests only.

They keep the same contracts as the real clients (futures per record, two-phase claims, TTLs on a clock the
test controls) so the handlers can be tested in milliseconds. Integration tests use the real services.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from collector.clients.base import ClaimState, OutgoingRecord
from collector.errors import BackendUnavailable

__all__ = ["MemoryProducer", "MemoryStore", "ProducedRecord"]

_DONE = "done"


@dataclass(frozen=True, slots=True)
class ProducedRecord:
    topic: str
    key: bytes | None
    value: bytes
    timestamp_ms: int | None = None  # the Kafka record timestamp asked for (None: the producer's clock)


@dataclass
class MemoryProducer:
    """Acknowledges at once, unless told to be down (``down``) or to hold deliveries open (``hold``).

    :param down: :meth:`produce` raises, as when the broker cannot be reached at all.
    :param fail_deliveries: the records are handed over, then every delivery fails (broker lost mid-way).
    :param hold: deliveries stay unresolved until :meth:`release_held` (a slow broker).
    """

    down: bool = False
    fail_deliveries: bool = False
    hold: bool = False
    records: list[ProducedRecord] = field(default_factory=list)
    _held: list[tuple[ProducedRecord, asyncio.Future[None]]] = field(default_factory=list)

    def connected(self) -> bool:
        return not self.down

    async def start(self) -> None:
        return None

    async def produce(self, topic: str, records: Sequence[OutgoingRecord]) -> list[asyncio.Future[None]]:
        if self.down:
            raise BackendUnavailable("kafka", "the twin is down")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for record in records:
            produced = ProducedRecord(topic, record.key, record.value, record.timestamp_ms)
            future: asyncio.Future[None] = loop.create_future()
            if self.hold:
                self._held.append((produced, future))
            elif self.fail_deliveries:
                future.set_exception(BackendUnavailable("kafka", "the twin lost the delivery"))
            else:
                self.records.append(produced)
                future.set_result(None)
            futures.append(future)
        return futures

    def release_held(self, *, deliver: bool = True) -> None:
        for produced, future in self._held:
            if deliver:
                self.records.append(produced)
                future.set_result(None)
            else:
                future.set_exception(BackendUnavailable("kafka", "the twin lost the delivery"))
        self._held.clear()

    def on(self, topic: str) -> list[ProducedRecord]:
        return [record for record in self.records if record.topic == topic]

    async def close(self) -> None:
        return None


@dataclass
class MemoryStore:
    """A dict with expiry on an injected clock (ms); ``down`` makes every call raise like a lost Redis."""

    clock: Callable[[], int]
    down: bool = False
    values: dict[str, tuple[str, int]] = field(default_factory=dict)

    async def claim(self, message_ids: Sequence[str], token: str, pending_ttl_ms: int) -> list[ClaimState]:
        self._check()
        states = []
        for message_id in message_ids:
            current = self._get(f"dedup:{message_id}")
            if current is None:
                self.values[f"dedup:{message_id}"] = (token, self.clock() + pending_ttl_ms)
                states.append(ClaimState.NEW)
            else:
                states.append(ClaimState.DONE if current == _DONE else ClaimState.PENDING)
        return states

    async def commit(self, message_ids: Sequence[str], window_ms: int) -> None:
        self._check()
        for message_id in message_ids:
            self.values[f"dedup:{message_id}"] = (_DONE, self.clock() + window_ms)

    async def release(self, message_ids: Sequence[str], token: str) -> None:
        self._check()
        for message_id in message_ids:
            if self._get(f"dedup:{message_id}") == token:
                del self.values[f"dedup:{message_id}"]

    async def link(self, links: Sequence[tuple[str, str]], ttl_ms: int) -> None:
        self._check()
        for from_id, user_id in links:
            self.values[f"identity:{from_id}"] = (user_id, self.clock() + ttl_ms)

    async def resolve(self, ids: Sequence[str]) -> Mapping[str, str]:
        self._check()
        found = {any_id: self._get(f"identity:{any_id}") for any_id in ids}
        return {any_id: user_id for any_id, user_id in found.items() if user_id is not None}

    async def ping(self) -> bool:
        return not self.down

    async def close(self) -> None:
        return None

    def _get(self, key: str) -> str | None:
        entry = self.values.get(key)
        if entry is None or entry[1] <= self.clock():
            self.values.pop(key, None)
            return None
        return entry[0]

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailable("redis", "the twin is down")
