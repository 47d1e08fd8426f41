"""Writes identify traits into the profile, guarded by event time like every profile write."""

from __future__ import annotations

import json
from collections.abc import Iterator

from pyflink.common import Row
from pyflink.datastream import FlatMapFunction, RuntimeContext

from connectors.redis import ProfileStore
from udfs.traits import profile_fields_from_traits

__all__ = ["WriteTraits"]


class WriteTraits(FlatMapFunction):
    """For each ``identify``: email, name, time zone and the raw traits to ``profile:<person>``; emits nothing."""

    def __init__(self, redis_url: str, key_prefix: str, ttl_ms: int) -> None:
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.ttl_ms = ttl_ms
        self.profiles: ProfileStore | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.profiles = ProfileStore(self.redis_url, self.key_prefix, self.ttl_ms)
        self.profiles.setup()
        self.written = runtime_context.get_metrics_group().counter("traits_written")

    def close(self) -> None:
        if self.profiles is not None:
            self.profiles.close()

    def flat_map(self, value: Row) -> Iterator[Row]:
        if '"identify"' not in value[2]:  # cheap pre-check before parsing again
            return
        event = json.loads(value[2])
        if event.get("type") != "identify":
            return
        fields = profile_fields_from_traits(event)
        if fields and self.profiles is not None:
            self.profiles.write_guarded(value[0], "traits_updated_ms", int(value[1]), fields)
            self.written.inc()
        yield from ()
