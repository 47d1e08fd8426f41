"""Reading a request body within its size limit, gunzipping it when the client compressed it.

The limit applies to the decompressed size (Segment's 32 KB per call and 500 KB per batch are about the
events), and reading stops as soon as it is passed: an oversize or decompression-bomb body costs at most the
limit in memory. analytics-python and RudderStack's SDKs may send ``Content-Encoding: gzip``.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = ["Body", "BodyError", "read_body"]

_GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass(frozen=True, slots=True)
class Body:
    """The bytes read; when ``too_large``, only the first ``limit`` of them."""

    data: bytes
    too_large: bool


class BodyError(ValueError):
    """A body that cannot be read at all (unknown encoding, broken gzip); ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(chunks: AsyncIterator[bytes], content_encoding: str | None, limit: int) -> Body:
    """Read ``chunks`` (the request stream) up to ``limit`` decompressed bytes.

    :param content_encoding: the request's ``Content-Encoding``; ``gzip``, ``identity`` or none.
    :raises BodyError: for other encodings (415) and for gzip that does not decompress (400).
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise BodyError(415, f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding")
    inflater = zlib.decompressobj(_GZIP_WBITS) if encoding == "gzip" else None
    data = bytearray()
    async for chunk in chunks:
        if inflater is not None:
            try:
                chunk = inflater.decompress(chunk, limit + 1 - len(data))
            except zlib.error as exc:
                raise BodyError(400, f"the body is not valid gzip: {exc}") from None
        data += chunk
        if len(data) > limit:
            return Body(bytes(data[:limit]), too_large=True)
    if inflater is not None and not inflater.eof:
        raise BodyError(400, "the body is not valid gzip: it ends early")
    return Body(bytes(data), too_large=False)
