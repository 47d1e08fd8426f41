"""Unsubscribe tokens: round trip, tamper evidence, expiry, and malformed input refused with InvalidToken."""

from __future__ import annotations

import base64
import inspect
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

import udfs.unsubscribe
from udfs.unsubscribe import MIN_SECRET_BYTES, ExpiredToken, InvalidToken, sign, unsubscribe_url, verify

SECRET = b"k" * MIN_SECRET_BYTES
OTHER_SECRET = b"o" * MIN_SECRET_BYTES
ISSUED = 1_795_000_000
DAY = 86_400


def test_round_trip() -> None:
    token = sign("user-ann", "ann@example.com", SECRET, ISSUED)
    assert verify(token, SECRET, max_age=60 * DAY, now=ISSUED + DAY) == ("user-ann", "ann@example.com")


def test_round_trip_with_unicode_and_str_secret() -> None:
    secret = "s" * MIN_SECRET_BYTES
    token = sign("ünï-1", "zoë@exämple.com", secret, ISSUED)
    assert verify(token, secret, max_age=DAY, now=ISSUED) == ("ünï-1", "zoë@exämple.com")


def test_token_is_url_safe_and_deterministic() -> None:
    token = sign("user/with?odd&chars=", "a+b@example.com", SECRET, ISSUED)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    assert token == sign("user/with?odd&chars=", "a+b@example.com", SECRET, ISSUED)


def test_verify_uses_the_wall_clock_by_default() -> None:
    token = sign("p", "p@example.com", SECRET, ISSUED)
    with pytest.raises(ExpiredToken):
        verify(token, SECRET, max_age=1)  # issued in 2026, checked now (later) with a 1 s life


def test_a_changed_payload_is_refused() -> None:
    token = sign("user-ann", "ann@example.com", SECRET, ISSUED)
    payload, mac = token.split(".")
    forged = _b64({"v": 1, "p": "user-bob", "e": "bob@example.com", "t": ISSUED})
    with pytest.raises(InvalidToken, match="signature does not match"):
        verify(f"{forged}.{mac}", SECRET, max_age=DAY, now=ISSUED)


@pytest.mark.parametrize("position", [0, 10, -1])
def test_any_flipped_character_is_refused(position: int) -> None:
    token = sign("user-ann", "ann@example.com", SECRET, ISSUED)
    for part in (0, 1):
        pieces = token.split(".")
        chars = list(pieces[part])
        chars[position] = "A" if chars[position] != "A" else "B"
        pieces[part] = "".join(chars)
        with pytest.raises(InvalidToken):
            verify(".".join(pieces), SECRET, max_age=DAY, now=ISSUED)


def test_another_secret_is_refused() -> None:
    token = sign("user-ann", "ann@example.com", OTHER_SECRET, ISSUED)
    with pytest.raises(InvalidToken, match="signature"):
        verify(token, SECRET, max_age=DAY, now=ISSUED)


def test_expiry_boundary() -> None:
    token = sign("user-ann", "ann@example.com", SECRET, ISSUED)
    assert verify(token, SECRET, max_age=DAY, now=ISSUED + DAY) == ("user-ann", "ann@example.com")
    with pytest.raises(ExpiredToken, match="expired"):
        verify(token, SECRET, max_age=DAY, now=ISSUED + DAY + 1)
    assert issubclass(ExpiredToken, InvalidToken) and issubclass(InvalidToken, ValueError)


def test_a_token_from_the_future_is_refused() -> None:
    token = sign("user-ann", "ann@example.com", SECRET, ISSUED + 3600)
    with pytest.raises(InvalidToken, match="future"):
        verify(token, SECRET, max_age=DAY, now=ISSUED)


@pytest.mark.parametrize(
    "token",
    ["", "nodot", ".", "a.", ".b", "a.b.c", "é.b", "a=.b", "a+/.b", "x" * 5000, "YQ.YQ"],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        verify(token, SECRET, max_age=DAY, now=ISSUED)


def test_a_genuine_signature_over_a_foreign_payload_shape_is_refused() -> None:
    """Defence in depth: even with the key, only our versioned shape verifies."""
    for body in ({"v": 2, "p": "a", "e": "a@b.c", "t": ISSUED}, {"v": 1, "p": "a", "e": "a@b.c", "t": "soon"}, [1]):
        payload = _b64(body)
        mac = udfs.unsubscribe._b64encode(udfs.unsubscribe._mac(SECRET, payload))
        with pytest.raises(InvalidToken):
            verify(f"{payload}.{mac}", SECRET, max_age=DAY, now=ISSUED)


@pytest.mark.parametrize("secret", [b"", b"short", "x" * (MIN_SECRET_BYTES - 1)])
def test_weak_secrets_are_refused(secret: bytes | str) -> None:
    with pytest.raises(ValueError, match="at least"):
        sign("p", "p@example.com", secret, ISSUED)
    with pytest.raises(ValueError, match="at least"):
        verify("a.b", secret, max_age=DAY)


@pytest.mark.parametrize(
    ("person_id", "email", "issued_at"), [("", "a@b.c", ISSUED), ("p", "", ISSUED), ("p", "a@b.c", -1)]
)
def test_sign_refuses_empty_parts(person_id: str, email: str, issued_at: int) -> None:
    with pytest.raises(ValueError):
        sign(person_id, email, SECRET, issued_at)


def test_unsubscribe_url_adds_the_token_and_keeps_the_query() -> None:
    token = sign("user-ann", "ann@example.com", SECRET, ISSUED)
    url = unsubscribe_url("https://mail.shop.example/u?list=news&token=old", token)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "mail.shop.example", "/u")
    assert parse_qs(parts.query) == {"list": ["news"], "token": [token]}


@pytest.mark.parametrize("base", ["javascript:alert(1)", "/unsubscribe", "ftp://x/y", "https:///nohost"])
def test_unsubscribe_url_needs_an_absolute_http_base(base: str) -> None:
    with pytest.raises(ValueError, match="absolute http"):
        unsubscribe_url(base, "t.k")


def test_all_lists_the_public_names() -> None:
    module = udfs.unsubscribe
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    }
    assert set(module.__all__) == public | {"MIN_SECRET_BYTES"}


def _b64(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()


def test_a_second_spelling_of_the_signature_is_refused() -> None:
    """The last base64 character of a 32-byte MAC carries 2 unused bits; only the canonical spelling verifies."""
    token = sign("user-ann", "ann@example.com", SECRET, ISSUED)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    for spare in (1, 2, 3):
        twin = token[:-1] + alphabet[(last & ~3) | spare]
        with pytest.raises(InvalidToken):
            verify(twin, SECRET, max_age=DAY, now=ISSUED)
