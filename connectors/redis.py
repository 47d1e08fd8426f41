"""Profiles in Redis: one hash per person, written with an event-time guard.

Key layout (``<prefix>`` is ``profile:`` by default)::

    <prefix><person_id>   hash
        cart              JSON: {"cart_id", "currency", "value", "items": [{product_id, name, price, quantity,
                          image_url, url}]}; "[]"-like empty cart after a purchase or removal
        cart_value        the cart's value as a decimal string, for quick reads
        cart_currency     ISO 4217 code
        cart_updated_ms   event time (ms) of the cart change this snapshot reflects: the guard
        last_seen_ms      latest event time (ms) seen for the person (either job; only ever moves forward)
        engagement_score  0-100, the current session's engagement (udfs/intent.py has the formula)
        intent_score      0-100, the current session's purchase intent
        top_categories    JSON list of category names, strongest affinity first
        recently_viewed   JSON list of product ids, newest first
        session_start_ms  event time the scored session started
        scored_at_ms      event time of the newest event in that score: the guard of the fields above
    <prefix><person_id>:triggers   sorted set, score = fired_at_ms, member = trigger JSON
                                   {trigger_id, trigger_type, template?, fired_at_ms}; the newest 50 are kept

The guard makes writes order-proof: a replay, or an event processed after a newer one, never
overwrites newer data, so a job restarted from a checkpoint can rewrite profiles safely.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connectors.errors import PermanentError, TransientError

__all__ = [
    "DEFAULT_REDIS_TIMEOUT_S",
    "TRIGGER_HISTORY_LENGTH",
    "BatchedProfileWrites",
    "GuardedFields",
    "ProfileStore",
    "ProfileWrite",
    "cart_fields",
    "translate_redis_errors",
]

log = logging.getLogger(__name__)

DEFAULT_REDIS_TIMEOUT_S = 5.0

TRIGGER_HISTORY_LENGTH = 50

# KEYS[1] profile key; ARGV: ttl (ms), then per group: guard field, guard time (ms), number of fields, then
# field, value pairs. Writes a group's pairs (and its guard) only if the stored guard is not newer; moves
# last_seen_ms forward to the newest guard time. Returns a bit per group written (group i: bit i).
_WRITE_GUARDED = """
local i = 2
local group = 0
local written = 0
local newest = -1
while i <= #ARGV do
  local guard, incoming, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local current = tonumber(redis.call('HGET', KEYS[1], guard) or '-1')
  if incoming >= current then
    redis.call('HSET', KEYS[1], guard, ARGV[i + 1], unpack(ARGV, i + 3, i + 2 + 2 * n))
    written = written + 2 ^ group
  end
  if incoming > newest then newest = incoming end
  i = i + 3 + 2 * n
  group = group + 1
end
local seen = tonumber(redis.call('HGET', KEYS[1], 'last_seen_ms') or '-1')
if newest > seen then redis.call('HSET', KEYS[1], 'last_seen_ms', newest) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return written
"""


@dataclass(frozen=True, slots=True)
class GuardedFields:
    """Profile fields written together, only if ``guard_field`` holds no newer event time than ``guard_ms``."""

    guard_field: str
    guard_ms: int
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ProfileWrite:
    """What one record changes in one person's profile: field groups, and triggers for the history."""

    person_id: str
    groups: Sequence[GuardedFields] = ()
    triggers: Sequence[Mapping[str, Any]] = ()


def cart_fields(cart: Mapping[str, Any], updated_ms: int) -> GuardedFields:
    """The profile's cart fields for a cart snapshot (layout above), guarded by the change's event time."""
    fields = {
        "cart": json.dumps(cart, separators=(",", ":"), sort_keys=True),
        "cart_value": f"{cart.get('value', 0):.2f}",
        "cart_currency": cart.get("currency") or "",
    }
    return GuardedFields("cart_updated_ms", updated_ms, fields)


class ProfileStore:
    """Writes profile fields; built in an operator's ``open()`` and closed in ``close()``."""

    def __init__(self, url: str, key_prefix: str = "profile:", ttl_ms: int = 30 * 86_400_000) -> None:
        self.url = url
        self.key_prefix = key_prefix
        self.ttl_ms = ttl_ms
        self._client: redis.Redis | None = None
        self._write_guarded: Any = None

    def setup(self) -> None:
        """Connect and ping, so a wrong URL fails at job start, not at the first record."""
        self._client = redis.Redis.from_url(
            self.url, socket_timeout=DEFAULT_REDIS_TIMEOUT_S, socket_connect_timeout=DEFAULT_REDIS_TIMEOUT_S
        )
        with translate_redis_errors(f"connecting to Redis at {self.url}"):
            self._client.ping()
            self._write_guarded = self._client.register_script(_WRITE_GUARDED)

    def key(self, person_id: str) -> str:
        return f"{self.key_prefix}{person_id}"

    def write_cart(self, person_id: str, cart: Mapping[str, Any], updated_ms: int) -> bool:
        """Store the cart snapshot unless a newer one is there; returns whether it was written."""
        return self.write_groups(person_id, [cart_fields(cart, updated_ms)]) == 1

    def write_guarded(self, person_id: str, guard_field: str, guard_ms: int, fields: Mapping[str, str]) -> bool:
        """Write ``fields`` unless ``guard_field`` already holds a newer event time; one round trip."""
        return self.write_groups(person_id, [GuardedFields(guard_field, guard_ms, fields)]) == 1

    def write_groups(self, person_id: str, groups: Sequence[GuardedFields]) -> int:
        """Write each group under its own guard, all in one round trip; returns a bit per group written."""
        client = self._connected()
        with translate_redis_errors(f"writing the profile of {person_id!r}"):
            return int(self._write_guarded(keys=[self.key(person_id)], args=self._args(groups), client=client))

    def write_many(self, writes: Sequence[ProfileWrite]) -> None:
        """Several people's field groups and triggers in one pipelined round trip (each group guarded on its own)."""
        client = self._connected()
        with translate_redis_errors(f"writing {len(writes)} profiles"):
            pipe = client.pipeline(transaction=False)
            for write in writes:
                if write.groups:
                    self._write_guarded(keys=[self.key(write.person_id)], args=self._args(write.groups), client=pipe)
                for trigger in write.triggers:
                    self._queue_trigger(pipe, write.person_id, trigger)
            pipe.execute()

    def _args(self, groups: Sequence[GuardedFields]) -> list[str | int]:
        args: list[str | int] = [self.ttl_ms]
        for group in groups:
            args += [group.guard_field, group.guard_ms, len(group.fields)]
            for name, value in group.fields.items():
                args += [name, value]
        return args

    def record_trigger(self, person_id: str, trigger: Mapping[str, Any]) -> None:
        """Add a trigger to the person's history; the same trigger twice (a replay) is stored once."""
        client = self._connected()
        with translate_redis_errors(f"recording a trigger of {person_id!r}"):
            pipe = client.pipeline(transaction=True)
            self._queue_trigger(pipe, person_id, trigger)
            pipe.execute()

    def _queue_trigger(self, pipe: Any, person_id: str, trigger: Mapping[str, Any]) -> None:
        key = f"{self.key(person_id)}:triggers"
        member = json.dumps(trigger, separators=(",", ":"), sort_keys=True)
        pipe.zadd(key, {member: int(trigger["fired_at_ms"])})
        pipe.zremrangebyrank(key, 0, -TRIGGER_HISTORY_LENGTH - 1)
        pipe.pexpire(key, self.ttl_ms)

    def trigger_history(self, person_id: str) -> list[dict[str, Any]]:
        client = self._connected()
        with translate_redis_errors(f"reading the triggers of {person_id!r}"):
            # redis-py types replies as Awaitable | Any (sync and async clients share stubs); ours is sync
            members = cast(list[bytes], client.zrange(f"{self.key(person_id)}:triggers", 0, -1))
        return [json.loads(m) for m in members]

    def _connected(self) -> redis.Redis:
        if self._client is None:
            raise RuntimeError("ProfileStore.setup() was not called")
        return self._client

    def read(self, person_id: str) -> dict[str, str]:
        client = self._connected()
        with translate_redis_errors(f"reading the profile of {person_id!r}"):
            # redis-py types replies as Awaitable | Any (sync and async clients share stubs); ours is sync
            raw = cast(dict[bytes, bytes], client.hgetall(self.key(person_id)))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class BatchedProfileWrites:
    """Profile writes gathered and sent in one pipelined round trip per batch, instead of one per record.

    A blocking round trip per record is what limits a thread-mode PyFlink job: every Python operator of the
    TaskManager shares one interpreter lock, and each reply must wait for it again (BENCHMARKS.md). A batch goes
    out when it holds ``max_records`` writes, or when its oldest is ``linger_ms`` old (checked on each add, and by
    a timer of the caller's that calls :meth:`flush`), so a click still reaches the profile within ``linger_ms``.

    What it costs: PyFlink 2.2.1 tells a thread-mode function nothing before a checkpoint barrier, so writes still
    in the batch when a checkpoint completes are lost if the job dies within ``linger_ms`` after it; the profile
    then misses those changes until the person's next event (the event-time guard keeps newer data newer).
    ``max_records: 1`` writes every record at once.
    """

    def __init__(self, store: ProfileStore, max_records: int, linger_ms: int) -> None:
        self.store = store
        self.max_records = max_records
        self.linger_s = linger_ms / 1000
        self._pending: list[ProfileWrite] = []
        self._oldest = 0.0

    def add(self, write: ProfileWrite) -> bool:
        """Queue one record's writes; sends the batch when it is full or old. Returns whether a batch was
        started by this add (the caller then sets a timer to send it within ``linger_ms``)."""
        started = not self._pending
        if started:
            self._oldest = time.monotonic()
        self._pending.append(write)
        if len(self._pending) >= self.max_records or time.monotonic() - self._oldest >= self.linger_s:
            self.flush()
            return False
        return started

    def flush(self) -> None:
        """Send what is queued (nothing when empty)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self.store.write_many(batch)


@contextmanager
def translate_redis_errors(doing: str) -> Iterator[None]:
    """Turns redis-py exceptions into ours, in one place."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise TransientError(f"{doing} failed: {exc}") from exc
    except RedisError as exc:
        raise PermanentError(f"{doing} failed: {exc}") from exc
