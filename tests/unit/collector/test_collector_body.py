"""Reading bodies within Segment's limits, plain or gzipped."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest

from collector.body import Body, BodyError, read_body


def _read(data: bytes, encoding: str | None = None, limit: int = 100, chunk: int = 7) -> Body:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), chunk):
            yield data[start : start + chunk]

    return asyncio.run(read_body(chunks(), encoding, limit))


def test_a_body_within_the_limit_is_read_whole():
    assert _read(b"x" * 100) == Body(b"x" * 100, too_large=False)


def test_reading_stops_past_the_limit():
    assert _read(b"x" * 10_000) == Body(b"x" * 100, too_large=True)


def test_gzip_is_decompressed_and_the_limit_applies_to_the_result():
    assert _read(gzip.compress(b"y" * 90), "gzip") == Body(b"y" * 90, too_large=False)
    bomb = gzip.compress(b"0" * 10_000_000)
    assert _read(bomb, "GZIP", chunk=1024) == Body(b"0" * 100, too_large=True)


@pytest.mark.parametrize(
    ("data", "encoding", "status"),
    [(b"not gzip", "gzip", 400), (gzip.compress(b"abc")[:-5], "gzip", 400), (b"{}", "br", 415)],
)
def test_unreadable_bodies_are_refused(data, encoding, status):
    with pytest.raises(BodyError) as caught:
        _read(data, encoding)

    assert caught.value.status == status
