"""Profiles in Redis: one hash per person, written with an event-time guard.

Key layout (``<prefix>`` is ``profile:`` by default)::

    <prefix><person_id>   hash
        cart              JSON: {"cart_id", "currency", "value", "items": [{product_id, name, price, quantity,
                          image_url, url}]}; "[]"-like empty cart after a purchase or removal
        cart_value        the cart's value as a decimal string, for quick reads
        cart_currency     ISO 4217 code
        cart_updated_ms   event time (ms) of the cart change this snapshot reflects: the guard
        last_seen_ms      latest event time (ms) seen for the person

The guard makes writes order-proof: a replay, or an event processed after a newer one, never
overwrites newer data, so a job restarted from a checkpoint can rewrite profiles safely.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connectors.errors import PermanentError, TransientError

__all__ = ["DEFAULT_REDIS_TIMEOUT_S", "ProfileStore"]

log = logging.getLogger(__name__)

DEFAULT_REDIS_TIMEOUT_S = 5.0

# KEYS[1] profile key; ARGV: cart_updated_ms, cart JSON, value, currency, ttl_ms
_WRITE_CART = """
local current = tonumber(redis.call('HGET', KEYS[1], 'cart_updated_ms') or '-1')
local incoming = tonumber(ARGV[1])
local written = 0
if incoming >= current then
  redis.call('HSET', KEYS[1], 'cart_updated_ms', ARGV[1], 'cart', ARGV[2], 'cart_value', ARGV[3],
             'cart_currency', ARGV[4])
  written = 1
end
local seen = tonumber(redis.call('HGET', KEYS[1], 'last_seen_ms') or '-1')
if incoming > seen then redis.call('HSET', KEYS[1], 'last_seen_ms', ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return written
"""


class ProfileStore:
    """Writes profile fields; built in an operator's ``open()`` and closed in ``close()``."""

    def __init__(self, url: str, key_prefix: str = "profile:", ttl_ms: int = 30 * 86_400_000) -> None:
        self.url = url
        self.key_prefix = key_prefix
        self.ttl_ms = ttl_ms
        self._client: redis.Redis | None = None
        self._write_cart: Any = None

    def setup(self) -> None:
        """Connect and ping, so a wrong URL fails at job start, not at the first record."""
        self._client = redis.Redis.from_url(
            self.url, socket_timeout=DEFAULT_REDIS_TIMEOUT_S, socket_connect_timeout=DEFAULT_REDIS_TIMEOUT_S
        )
        with _translated(f"connecting to Redis at {self.url}"):
            self._client.ping()
            self._write_cart = self._client.register_script(_WRITE_CART)

    def key(self, person_id: str) -> str:
        return f"{self.key_prefix}{person_id}"

    def write_cart(self, person_id: str, cart: Mapping[str, Any], updated_ms: int) -> bool:
        """Store the cart snapshot unless a newer one is there; returns whether it was written."""
        if self._client is None:
            raise RuntimeError("ProfileStore.setup() was not called")
        args = [
            updated_ms,
            json.dumps(cart, separators=(",", ":"), sort_keys=True),
            f"{cart.get('value', 0):.2f}",
            cart.get("currency", ""),
            self.ttl_ms,
        ]
        with _translated(f"writing the cart of {person_id!r}"):
            return bool(self._write_cart(keys=[self.key(person_id)], args=args, client=self._client))

    def read(self, person_id: str) -> dict[str, str]:
        if self._client is None:
            raise RuntimeError("ProfileStore.setup() was not called")
        with _translated(f"reading the profile of {person_id!r}"):
            raw = self._client.hgetall(self.key(person_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@contextmanager
def _translated(doing: str) -> Iterator[None]:
    """Turns redis-py exceptions into ours, in one place."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise TransientError(f"{doing} failed: {exc}") from exc
    except RedisError as exc:
        raise PermanentError(f"{doing} failed: {exc}") from exc
