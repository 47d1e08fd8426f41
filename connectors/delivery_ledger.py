"""What the delivery stage remembers in Redis: claims on triggers, sends per person, the suppression list.

Key layout (``<p>`` is the configured prefix, ``delivery:`` by default)::

    <p>claim:<trigger_id>    string, JSON {state: sending|sent|failed|uncertain, provider, message_id, at_ms,
                             reason}
                             kept for ``claim_ttl`` (longer than any replay window): the at-most-once guard
    <p>sends:<person_id>     sorted set of send times (ms), for frequency caps; trimmed to the cap window
    <p>suppressed            set of lower-cased email addresses that must not be mailed
    <p>suppressed:reasons    hash email → JSON {reason, source, at_ms}
    <p>provider-problem:<provider>   string, the problem, while one instance of the job has reported it
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, cast

import redis

from connectors.redis import DEFAULT_REDIS_TIMEOUT_S, translate_redis_errors

__all__ = ["Claim", "DeliveryLedger"]

ClaimState = Literal["sending", "sent", "failed", "uncertain"]


@dataclass(frozen=True)
class Claim:
    """A trigger's record in the ledger; ``provider`` is the one being (or that was) called.

    ``state`` other than ``sending`` is the trigger's final outcome (a delivery status), ``reason`` its reason: after
    a crash that lost the outcome's record, the record is written again from here.
    """

    state: ClaimState
    provider: str | None
    message_id: str | None
    at_ms: int
    reason: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "state": self.state,
                "provider": self.provider,
                "message_id": self.message_id,
                "at_ms": self.at_ms,
                "reason": self.reason,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Claim:
        data = json.loads(raw)
        return cls(data["state"], data.get("provider"), data.get("message_id"), int(data["at_ms"]), data.get("reason"))


class DeliveryLedger:
    #: how long a claim is kept: longer than any replay of the triggers topic
    CLAIM_TTL_MS = 30 * 86_400_000

    def __init__(self, url: str, prefix: str = "delivery:", claim_ttl_ms: int = CLAIM_TTL_MS) -> None:
        self.url = url
        self.prefix = prefix
        self.claim_ttl_ms = claim_ttl_ms
        self._client: redis.Redis | None = None

    def setup(self) -> None:
        self._client = redis.Redis.from_url(
            self.url, socket_timeout=DEFAULT_REDIS_TIMEOUT_S, socket_connect_timeout=DEFAULT_REDIS_TIMEOUT_S
        )
        with translate_redis_errors(f"connecting to Redis at {self.url}"):
            self._client.ping()

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            raise RuntimeError("DeliveryLedger.setup() was not called")
        return self._client

    # claims: the at-most-once guard ---------------------------------------------------------------

    def claim(self, trigger_id: str, provider: str | None) -> Claim | None:
        """Take the trigger for sending; returns None when taken, else the claim that was already there."""
        fresh = Claim("sending", provider, None, _now_ms())
        key = f"{self.prefix}claim:{trigger_id}"
        with translate_redis_errors(f"claiming trigger {trigger_id}"):
            if self.client.set(key, fresh.to_json(), nx=True, px=self.claim_ttl_ms):
                return None
            # redis-py types replies as Awaitable | Any (sync and async clients share stubs); ours is sync
            existing = cast(bytes | None, self.client.get(key))
        return Claim.from_json(existing) if existing else None

    def update(self, trigger_id: str, claim: Claim) -> None:
        with translate_redis_errors(f"recording trigger {trigger_id} as {claim.state}"):
            self.client.set(f"{self.prefix}claim:{trigger_id}", claim.to_json(), px=self.claim_ttl_ms)

    def release(self, trigger_id: str) -> None:
        """Give the trigger back (nothing was accepted), so a later attempt may claim it."""
        with translate_redis_errors(f"releasing trigger {trigger_id}"):
            self.client.delete(f"{self.prefix}claim:{trigger_id}")

    def get(self, trigger_id: str) -> Claim | None:
        with translate_redis_errors(f"reading trigger {trigger_id}"):
            # redis-py types replies as Awaitable | Any (sync and async clients share stubs); ours is sync
            raw = cast(bytes | None, self.client.get(f"{self.prefix}claim:{trigger_id}"))
        return Claim.from_json(raw) if raw else None

    # provider problems: said once by the whole job, not once per parallel instance -------------------

    def first_to_report(self, provider: str, problem: str | None, hold_ms: int) -> bool:
        """Whether this caller is the first to report ``problem`` (None: the problem is over) for ``provider``
        within ``hold_ms``; the others stay quiet."""
        key = f"{self.prefix}provider-problem:{provider}"
        with translate_redis_errors(f"noting a problem of {provider}"):
            if problem is None:
                return bool(self.client.delete(key))
            return bool(self.client.set(key, problem, nx=True, px=hold_ms))

    # frequency caps -------------------------------------------------------------------------------

    def record_send(self, person_id: str, at_ms: int, trigger_id: str, window_ms: int) -> None:
        key = f"{self.prefix}sends:{person_id}"
        with translate_redis_errors(f"recording a send to {person_id!r}"):
            pipe = self.client.pipeline(transaction=True)
            pipe.zadd(key, {trigger_id: at_ms})
            pipe.zremrangebyscore(key, "-inf", at_ms - window_ms)
            pipe.pexpire(key, window_ms)
            pipe.execute()

    def sends_since(self, person_id: str, since_ms: int) -> list[int]:
        with translate_redis_errors(f"reading the sends to {person_id!r}"):
            # redis-py types replies as Awaitable | Any (sync and async clients share stubs); ours is sync
            pairs = cast(
                list[tuple[bytes, float]],
                self.client.zrangebyscore(f"{self.prefix}sends:{person_id}", since_ms, "+inf", withscores=True),
            )
        return sorted(int(score) for _, score in pairs)

    # suppression ----------------------------------------------------------------------------------

    def is_suppressed(self, email: str) -> bool:
        with translate_redis_errors("reading the suppression list"):
            return bool(self.client.sismember(f"{self.prefix}suppressed", email.strip().lower()))

    def suppress(self, emails: Iterable[str], reason: str, source: str) -> int:
        """Add addresses to the suppression list; returns how many were new."""
        cleaned = sorted({e.strip().lower() for e in emails if e and e.strip()})
        if not cleaned:
            return 0
        note = json.dumps({"reason": reason, "source": source, "at_ms": _now_ms()})
        with translate_redis_errors("writing the suppression list"):
            pipe = self.client.pipeline(transaction=True)
            pipe.sadd(f"{self.prefix}suppressed", *cleaned)
            pipe.hset(f"{self.prefix}suppressed:reasons", mapping=dict.fromkeys(cleaned, note))
            added, _ = pipe.execute()
        return int(added)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _now_ms() -> int:
    return int(time.time() * 1000)
