"""Write keys as Segment's SDKs send them."""

from __future__ import annotations

import base64

import pytest

from collector.auth import WriteKeys, basic_auth_user


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "user"),
    [
        (_basic("demo-write-key:"), "demo-write-key"),
        (_basic("demo-write-key"), "demo-write-key"),  # without the colon, as old SDKs did
        ("basic " + base64.b64encode(b"k:").decode(), "k"),
        (_basic(":password-only"), None),
        ("Bearer token", None),
        ("Basic !!!", None),
        ("Basic", None),
        ("", None),
        (None, None),
    ],
)
def test_the_user_part_of_basic_auth_is_the_write_key(header, user):
    assert basic_auth_user(header) == user


def test_any_configured_key_is_accepted_and_nothing_else():
    keys = WriteKeys([b"one", b"two"])

    assert keys.accepts("one") and keys.accepts("two")
    assert not keys.accepts("three") and not keys.accepts("") and not keys.accepts(None)
    assert not keys.accepts("one ") and not keys.accepts("\udc80")
