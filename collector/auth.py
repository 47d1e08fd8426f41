"""Write keys: read from the request the way Segment's SDKs send them, and compared in constant time.

Server SDKs (analytics-python, analytics-node, RudderStack's) send the key as the HTTP Basic user with an
empty password; analytics.js and our browser snippet put it in the JSON body as ``writeKey``, because a
browser's ``sendBeacon`` cannot set headers. The header wins when both are present.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable

__all__ = ["WriteKeys", "basic_auth_user"]


def basic_auth_user(authorization: str | None) -> str | None:
    """The user part of an ``Authorization: Basic`` header; ``None`` when there is no usable one."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


class WriteKeys:
    """The accepted keys; :meth:`accepts` compares against every one, so timing does not tell which matched."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        self._keys = tuple(keys)

    def accepts(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        given = candidate.encode("utf-8", errors="surrogatepass")
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        return matched
