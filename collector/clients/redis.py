"""Deduplication claims and identity links in Redis, shared by every collector instance and kept across restarts.

Key layout (``<prefix>`` is ``cartpulse:`` by default)::

    <prefix>dedup:<messageId>        string  "done" once produced (TTL: the dedup window, default 24h), or a
                                             request token while that request is producing it (TTL: the
                                             pending TTL, default 10m)
    <prefix>identity:<anonymousId>   string  the userId an identify or alias call linked it to (TTL: 365d,
                                             renewed by each new link)
    <prefix>event-clock:<topic>      string  JSON ``{"offsetMs": <= 0, "savedAt": epoch ms}``: the heartbeat's
                                             event clock for that events topic, rewritten every interval, so a
                                             restarted collector resumes it (TTL: the resume window, 1h)

Why two phases rather than one ``SET NX PX window``: a claim taken before producing and kept after a failed
produce would drop the client's retry as a duplicate, and the event would be lost. So a claim is a token
with a short TTL, turned into ``done`` when the broker acknowledged the record, and deleted (only if still
ours) when it failed. A retry that finds someone else's token is answered 503, not 200.

The scripts touch several keys at once, so on Redis Cluster all of a request's keys would need one hash
slot; the sandbox and a single primary are what this is written for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from collector.clients.base import ClaimState
from collector.errors import BackendUnavailable
from collector.event_clock import SavedClock

__all__ = ["DEFAULT_KEY_PREFIX", "DEFAULT_REDIS_TIMEOUT_S", "RedisStore"]

log = logging.getLogger(__name__)

DEFAULT_REDIS_TIMEOUT_S = 2.0
DEFAULT_KEY_PREFIX = "cartpulse:"
_DONE = "done"

# KEYS: dedup keys; ARGV[1]: this request's token, ARGV[2]: pending TTL (ms). Returns, per key, "new" when
# this call claimed it, else the current value ("done" or another request's token).
_CLAIM = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
    out[i] = 'new'
  else
    out[i] = redis.call('GET', key) or 'gone'
  end
end
return out
"""

# KEYS: dedup keys; ARGV[1]: "done", ARGV[2]: the dedup window (ms). Marks every key as produced, whoever held
# it. One script call rather than a pipeline of SETs: redis-py packs and answers a pipeline command by command
# in Python (200 marks: ~1.6 ms of client CPU that way, ~0.35 ms as one script call, hiredis installed).
_COMMIT = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return #KEYS
"""

# KEYS: identity keys; ARGV[1]: TTL (ms), ARGV[1 + i]: the userId for KEYS[i]. One script call, like the marks.
_LINK = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
end
return #KEYS
"""

# KEYS: dedup keys; ARGV[1]: the token. Deletes only the claims that are still this request's.
_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""


class RedisStore:
    """Implements :class:`~collector.clients.base.DedupStore` and :class:`~collector.clients.base.IdentityStore`.

    :param url: ``redis://host:port/db`` (may carry a password).
    :param timeout_s: per command, connect included.
    """

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_REDIS_TIMEOUT_S, prefix: str = DEFAULT_KEY_PREFIX):
        self.prefix = prefix
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        self._claim = self._client.register_script(_CLAIM)
        self._commit = self._client.register_script(_COMMIT)
        self._release = self._client.register_script(_RELEASE)
        self._link = self._client.register_script(_LINK)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except RedisError:
            return False

    async def claim(self, message_ids: Sequence[str], token: str, pending_ttl_ms: int) -> list[ClaimState]:
        if not message_ids:
            return []
        with _translated("claiming message ids"):
            answers: list[str] = await self._claim(keys=self._dedup_keys(message_ids), args=[token, pending_ttl_ms])
        return [_state(answer) for answer in answers]

    async def commit(self, message_ids: Sequence[str], window_ms: int) -> None:
        if not message_ids:
            return
        with _translated("marking message ids as produced"):
            await self._commit(keys=self._dedup_keys(message_ids), args=[_DONE, window_ms])

    async def release(self, message_ids: Sequence[str], token: str) -> None:
        if not message_ids:
            return
        with _translated("releasing message id claims"):
            await self._release(keys=self._dedup_keys(message_ids), args=[token])

    async def link(self, links: Sequence[tuple[str, str]], ttl_ms: int) -> None:
        if not links:
            return
        with _translated("recording identity links"):
            await self._link(
                keys=[self._identity_key(from_id) for from_id, _ in links],
                args=[ttl_ms, *(user_id for _, user_id in links)],
            )

    async def resolve(self, ids: Sequence[str]) -> Mapping[str, str]:
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        with _translated("resolving identities"):
            found: list[Any] = await self._client.mget([self._identity_key(i) for i in unique])
        return {from_id: user_id for from_id, user_id in zip(unique, found, strict=True) if user_id}

    async def load_event_clock(self, topic: str) -> SavedClock | None:
        """The event clock last saved for ``topic`` by any collector, or ``None`` (none, expired or unreadable)."""
        with _translated("reading the event clock"):
            raw = await self._client.get(self._clock_key(topic))
        try:
            doc = json.loads(raw) if raw else None
            return SavedClock(int(doc["offsetMs"]), int(doc["savedAt"])) if isinstance(doc, dict) else None
        except (ValueError, KeyError, TypeError):
            return None

    async def save_event_clock(self, topic: str, saved: SavedClock, ttl_ms: int) -> None:
        value = json.dumps({"offsetMs": saved.offset_ms, "savedAt": saved.saved_at_ms}, separators=(",", ":"))
        with _translated("saving the event clock"):
            await self._client.set(self._clock_key(topic), value, px=max(1, ttl_ms))

    async def close(self) -> None:
        await self._client.aclose()

    def _dedup_keys(self, message_ids: Sequence[str]) -> list[str]:
        return [f"{self.prefix}dedup:{message_id}" for message_id in message_ids]

    def _identity_key(self, any_id: str) -> str:
        return f"{self.prefix}identity:{any_id}"

    def _clock_key(self, topic: str) -> str:
        return f"{self.prefix}event-clock:{topic}"


def _state(answer: str) -> ClaimState:
    if answer == "new":
        return ClaimState.NEW
    if answer == _DONE:
        return ClaimState.DONE
    return ClaimState.PENDING  # another request's token, or a claim that expired between SET and GET


@contextmanager
def _translated(doing: str) -> Iterator[None]:
    """The one place where redis-py's errors become the collector's."""
    try:
        yield
    except RedisError as exc:
        raise BackendUnavailable("redis", f"{doing}: {type(exc).__name__}: {exc}") from exc
    except OSError as exc:
        raise BackendUnavailable("redis", f"{doing}: {exc}") from exc
