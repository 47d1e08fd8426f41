"""Signed unsubscribe tokens: every email carries one, and the unsubscribe endpoint honours only tokens it can verify.

A token is ``<payload>.<mac>``, both base64url without padding, so it sits in a URL query as is:

    payload  = compact JSON {"v": 1, "p": person_id, "e": email, "t": issued_at (epoch seconds)}
    mac      = HMAC-SHA256(secret, "cartpulse-unsubscribe." + payload)

Tampering with any byte of the payload breaks the MAC, checked in constant time (:func:`hmac.compare_digest`)
before the payload is even decoded. A token older than ``max_age`` is refused, so a link leaked from an old email
stops working. The token is signed, not encrypted: the address is readable in the link, so the endpoint must not
log query strings. Rotating the secret invalidates every link already sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "MIN_SECRET_BYTES",
    "ExpiredToken",
    "InvalidToken",
    "sign",
    "unsubscribe_url",
    "verify",
]

#: Shorter secrets are refused: HMAC-SHA256 is only as strong as its key (e.g. ``secrets.token_urlsafe(32)``).
MIN_SECRET_BYTES = 32
_VERSION = 1
_CONTEXT = b"cartpulse-unsubscribe."  # domain separation: a MAC made for something else never verifies here
_MAX_CLOCK_SKEW_S = 300  # a token "issued" further in the future than this was not issued by us
_MAX_TOKEN_CHARS = 2048


class InvalidToken(ValueError):
    """The token is malformed, was not signed with this secret, or was altered; the reason says which."""


class ExpiredToken(InvalidToken):
    """The token was genuine but is older than ``max_age``; the endpoint may offer to send a fresh link."""


def sign(person_id: str, email: str, secret: bytes | str, issued_at: int) -> str:
    """A URL-safe token for ``(person_id, email)``, valid from ``issued_at``.

    :param secret: at least :data:`MIN_SECRET_BYTES` bytes (a ``str`` is UTF-8 encoded); the endpoint verifies
        with the same one.
    :param issued_at: epoch seconds; passed in, so rendering the same email twice gives the same token.
    :raises ValueError: an empty id or address, a weak secret, or a negative time.
    """
    key = _key(secret)
    if not isinstance(person_id, str) or not person_id:
        raise ValueError("sign: person_id must be a non-empty string")
    if not isinstance(email, str) or not email:
        raise ValueError("sign: email must be a non-empty string")
    if not isinstance(issued_at, int) or isinstance(issued_at, bool) or issued_at < 0:
        raise ValueError(f"sign: issued_at must be epoch seconds (an integer >= 0), got {issued_at!r}")
    body = {"v": _VERSION, "p": person_id, "e": email, "t": issued_at}
    payload = _b64encode(json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode())
    return f"{payload}.{_b64encode(_mac(key, payload))}"


def verify(token: str, secret: bytes | str, max_age: int, *, now: float | None = None) -> tuple[str, str]:
    """The ``(person_id, email)`` a token was signed for, if it is genuine and not older than ``max_age``.

    :param max_age: seconds a token stays valid after its ``issued_at``, e.g. 60 days.
    :param now: epoch seconds; default the wall clock (tests pass a fixed one).
    :raises ExpiredToken: genuine but too old.
    :raises InvalidToken: anything else wrong with it.
    """
    key = _key(secret)
    if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
        raise InvalidToken("the token is empty or too long")
    payload, sep, mac = token.partition(".")
    if not sep or not _is_b64url(payload) or not _is_b64url(mac):
        raise InvalidToken("the token is not <payload>.<signature> in base64url")
    try:
        given = _b64decode(mac)
    except ValueError as exc:
        raise InvalidToken("the signature is not base64url") from exc
    if not hmac.compare_digest(given, _mac(key, payload)):
        raise InvalidToken("the signature does not match (altered, or signed with another secret)")
    try:
        body = json.loads(_b64decode(payload))
    except ValueError as exc:  # a genuine MAC over a bad payload means our own bug, but say so plainly
        raise InvalidToken("the payload is not base64url JSON") from exc
    person_id, email, issued_at = _fields(body)
    clock = time.time() if now is None else now
    if issued_at > clock + _MAX_CLOCK_SKEW_S:
        raise InvalidToken("the token was issued in the future")
    if clock - issued_at > max_age:
        raise ExpiredToken(f"the token expired: issued {int(clock - issued_at)} s ago, valid for {max_age} s")
    return person_id, email


def unsubscribe_url(base_url: str, token: str) -> str:
    """``base_url`` with ``token=<token>`` added to its query (other query parameters are kept).

    :raises ValueError: ``base_url`` is not an absolute http(s) URL.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"unsubscribe base URL must be an absolute http(s) URL, got {base_url!r}")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    query.append(("token", token))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _fields(body: object) -> tuple[str, str, int]:
    if not isinstance(body, dict) or body.get("v") != _VERSION:
        raise InvalidToken("unknown token version")
    person_id, email, issued_at = body.get("p"), body.get("e"), body.get("t")
    if not isinstance(person_id, str) or not isinstance(email, str) or not isinstance(issued_at, int):
        raise InvalidToken("the payload lacks person, email or time")
    return person_id, email, issued_at


def _key(secret: bytes | str) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if not isinstance(key, bytes) or len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the unsubscribe secret must be at least {MIN_SECRET_BYTES} bytes")
    return key


def _mac(key: bytes, payload: str) -> bytes:
    return hmac.new(key, _CONTEXT + payload.encode("ascii"), hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _is_b64url(text: str) -> bool:
    """Only the URL-safe alphabet, no padding: anything else (``+``, ``/``, ``=``, non-ASCII) is not ours."""
    return bool(text) and text.isascii() and all(c.isalnum() or c in "-_" for c in text)


def _b64decode(text: str) -> bytes:
    """Canonical base64url only: unused trailing bits must be zero, so one token has exactly one spelling."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
    if _b64encode(data) != text:
        raise ValueError("not canonical base64url")
    return data
