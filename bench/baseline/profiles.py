"""ProfileStore's writes, unchanged, but queued into one Redis pipeline sent every N commands or T ms.

The Flink jobs make one round trip per profile write (about 4,500 writes/s here, issue 10); a plain consumer
would batch them. Rather than copy the store's Lua guard, key layout and trigger-history format, this runs
``ProfileStore``'s own methods against a stand-in client that appends every command to the open pipeline
(``connectors/redis.py`` stays the one place that knows the layout). The event-time guard still holds per
write: each write is its own ``EVALSHA`` in the pipeline, executed in order.
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis
from redis.client import Pipeline

from connectors.redis import ProfileStore, translate_redis_errors

__all__ = ["PipelinedProfiles"]


class _Queue:
    """What ``ProfileStore`` sees as its client: commands join the pipeline, and nothing runs until a flush.

    ``record_trigger`` opens its own MULTI pipeline and executes it; here that is the shared pipeline and a
    no-op execute (one process owns each person, so the history update needs no transaction). A guarded write
    returns 0 (not known yet); the Flink adapters ignore that result too.
    """

    def __init__(self, pipe: Pipeline) -> None:
        self._pipe = pipe

    def pipeline(self, transaction: bool = True) -> _Queue:
        return self

    def execute(self) -> list[Any]:
        return []

    def evalsha(self, sha: str, numkeys: int, *args: Any) -> int:
        self._pipe.evalsha(sha, numkeys, *args)
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


class PipelinedProfiles(ProfileStore):
    """A write-only ``ProfileStore`` whose writes go out in batches; call :meth:`maybe_flush` after each record
    and :meth:`flush` at the end (reads would only queue, so do not read through it)."""

    def __init__(self, url: str, key_prefix: str, ttl_ms: int, batch: int, flush_ms: float) -> None:
        super().__init__(url, key_prefix, ttl_ms)
        self.batch = batch
        self.flush_s = flush_ms / 1000.0
        self.commands_sent = 0
        self.flushes = 0
        self._pipe: Pipeline | None = None
        self._queue: _Queue | None = None
        self._oldest = 0.0

    def setup(self) -> None:
        super().setup()
        client = super()._connected()
        self._pipe = client.pipeline(transaction=False)
        self._queue = _Queue(self._pipe)

    def _connected(self) -> redis.Redis:
        if self._queue is None:
            raise RuntimeError("PipelinedProfiles.setup() was not called")
        if self._pipe is not None and not self._pipe.command_stack:
            self._oldest = time.monotonic()
        return cast(redis.Redis, self._queue)

    def maybe_flush(self, now: float) -> None:
        """Send the pipeline if it holds ``batch`` commands or its oldest has waited ``flush_ms``."""
        pipe = self._pipe
        if pipe is not None and pipe.command_stack:
            if len(pipe.command_stack) >= self.batch or now - self._oldest >= self.flush_s:
                self.flush()

    def flush(self) -> None:
        pipe = self._pipe
        if pipe is None or not pipe.command_stack:
            return
        pipe.scripts.add(self._write_guarded)  # the pipeline checks it is loaded (once per flush) and loads it
        count = len(pipe.command_stack)
        with translate_redis_errors(f"writing {count} queued profile commands"):
            pipe.execute()
        self.commands_sent += count
        self.flushes += 1
