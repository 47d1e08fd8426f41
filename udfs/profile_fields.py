"""Readers of the person's profile hash as Redis holds it: every value a string, some of them JSON (``cart``,
``recently_viewed``, ``top_categories``, ``traits``); the layout is in :mod:`connectors.redis`.

The address is required, since the unsubscribe link is signed for it: a missing or malformed one raises
:class:`~udfs.content_fields.InvalidContent` naming the field. The first name is optional; a name that is blank,
has control characters or runs over 64 characters counts as none, and the email greets "Hi there," instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from udfs import content_fields
from udfs.content_fields import InvalidContent

__all__ = ["email", "first_name", "json_field", "profile_cart_ids", "traits"]

_MAX_NAME_CHARS = 64


def json_field(profile: Mapping[str, str], name: str, kind: type) -> Any:
    """A JSON field of the profile parsed, ``None`` when absent or empty; wrong JSON or shape raises."""
    raw = profile.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise InvalidContent.expected(f"profile.{name}", "a string", raw)
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidContent(f"profile.{name}", "is not valid JSON") from None
    if not isinstance(value, kind):
        raise InvalidContent.expected(f"profile.{name}", f"a JSON {'object' if kind is dict else 'array'}", value)
    return value


def email(profile: Mapping[str, str]) -> str:
    """The address: the profile's ``email`` (the intent job writes it from identify calls), else ``traits.email``."""
    where, value = "profile.email", profile.get("email")
    if not value:
        where, value = "profile.traits.email", traits(profile).get("email")
    if not value:
        raise InvalidContent("profile.email", "missing (the unsubscribe link is signed for the address)")
    if not isinstance(value, str):
        raise InvalidContent.expected(where, "a string", value)
    local, at, domain = value.strip().rpartition("@")
    if (
        not at
        or not local
        or "." not in domain
        or any(c.isspace() or content_fields.unprintable(c) for c in value.strip())
    ):
        raise InvalidContent.expected(where, "an email address", value)
    return value.strip()


def first_name(profile: Mapping[str, str]) -> str | None:
    """The name to greet with, or ``None``: absent, blank, unprintable or overlong names are not used."""
    value: Any = profile.get("first_name")
    if not value:
        identify = traits(profile)
        value = identify.get("first_name") or identify.get("firstName")
    if not isinstance(value, str) or not value.strip():
        return None
    name = " ".join(value.split())
    if len(name) > _MAX_NAME_CHARS or any(content_fields.unprintable(c) for c in value):
        return None
    return name


def traits(profile: Mapping[str, str]) -> Mapping[str, Any]:
    """The identify traits (JSON), read only when a top-level field is missing: a bad blob we do not need is no
    reason to drop an email."""
    return json_field(profile, "traits", dict) or {}


def profile_cart_ids(profile: Mapping[str, str]) -> set[str]:
    """The product ids in the person's stored cart, so a browse email does not recommend what is already there."""
    cart = json_field(profile, "cart", dict)
    if not cart:
        return set()
    items = cart.get("items", [])
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise InvalidContent.expected("profile.cart.items", "an array of objects", items)
    return {
        content_fields.required_id(item.get("product_id"), f"profile.cart.items[{n}].product_id")
        for n, item in enumerate(items)
    }
