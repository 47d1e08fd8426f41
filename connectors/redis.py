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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connectors.errors import PermanentError, TransientError

__all__ = ["DEFAULT_REDIS_TIMEOUT_S", "TRIGGER_HISTORY_LENGTH", "ProfileStore", "translate_redis_errors"]

log = logging.getLogger(__name__)

DEFAULT_REDIS_TIMEOUT_S = 5.0

TRIGGER_HISTORY_LENGTH = 50

# KEYS[1] profile key; ARGV: guard field, guard time (ms), ttl (ms), then field, value pairs.
# Writes the pairs (and the guard) only if the stored guard is not newer; moves last_seen_ms forward.
_WRITE_GUARDED = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
local incoming = tonumber(ARGV[2])
local written = 0
if incoming >= current then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], unpack(ARGV, 4))
  written = 1
end
local seen = tonumber(redis.call('HGET', KEYS[1], 'last_seen_ms') or '-1')
if incoming > seen then redis.call('HSET', KEYS[1], 'last_seen_ms', ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return written
"""


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
        fields = {
            "cart": json.dumps(cart, separators=(",", ":"), sort_keys=True),
            "cart_value": f"{cart.get('value', 0):.2f}",
            "cart_currency": cart.get("currency") or "",
        }
        return self.write_guarded(person_id, "cart_updated_ms", updated_ms, fields)

    def write_guarded(self, person_id: str, guard_field: str, guard_ms: int, fields: Mapping[str, str]) -> bool:
        """Write ``fields`` unless ``guard_field`` already holds a newer event time; one round trip."""
        client = self._connected()
        args: list[str | int] = [guard_field, guard_ms, self.ttl_ms]
        for name, value in fields.items():
            args += [name, value]
        with translate_redis_errors(f"writing the profile of {person_id!r}"):
            return bool(self._write_guarded(keys=[self.key(person_id)], args=args, client=client))

    def record_trigger(self, person_id: str, trigger: Mapping[str, Any]) -> None:
        """Add a trigger to the person's history; the same trigger twice (a replay) is stored once."""
        client = self._connected()
        key = f"{self.key(person_id)}:triggers"
        member = json.dumps(trigger, separators=(",", ":"), sort_keys=True)
        with translate_redis_errors(f"recording a trigger of {person_id!r}"):
            pipe = client.pipeline(transaction=True)
            pipe.zadd(key, {member: int(trigger["fired_at_ms"])})
            pipe.zremrangebyrank(key, 0, -TRIGGER_HISTORY_LENGTH - 1)
            pipe.pexpire(key, self.ttl_ms)
            pipe.execute()

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


@contextmanager
def translate_redis_errors(doing: str) -> Iterator[None]:
    """Turns redis-py exceptions into ours, in one place."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise TransientError(f"{doing} failed: {exc}") from exc
    except RedisError as exc:
        raise PermanentError(f"{doing} failed: {exc}") from exc
