"""Checks of the untrusted fields an email is built from: the trigger's, the catalog's.

Everything an email reads is outside input, so a missing or malformed field raises :class:`InvalidContent` naming
it (``trigger.items[1].price``, ``catalog['boot'].name``). It is an :class:`~udfs.events.InvalidEvent`, so
:func:`udfs.events.dead_letter_record` files it with its field. Display text is put on one line (:func:`clean`)
and a URL counts only if it is absolute http(s) (:func:`absolute_http`): ``javascript:`` and ``data:`` are not
links an email may carry.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from udfs.events import InvalidEvent

__all__ = [
    "InvalidContent",
    "absolute_http",
    "clean",
    "currency",
    "id_list",
    "optional_id",
    "optional_int",
    "optional_price",
    "optional_str",
    "optional_text",
    "price",
    "required_id",
    "text",
    "unprintable",
]

_UNPRINTABLE = frozenset({"Cc", "Cs", "Zl", "Zp"})  # controls (CR, LF, TAB...), surrogates, line/para separators


class InvalidContent(InvalidEvent):
    """An input to an email is missing or malformed; ``field`` names it (``profile.cart``, ``trigger.items``)."""


def clean(text: str | None) -> str:
    """Display text on one line: whitespace runs (CR and LF included) become one space, other controls go."""
    if not text:
        return ""
    return " ".join("".join(c for c in text if c.isspace() or not unprintable(c)).split())


def unprintable(char: str) -> bool:
    return unicodedata.category(char) in _UNPRINTABLE


def text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None or value == "":
        raise InvalidContent(f"trigger.{name}", "missing")
    if not isinstance(value, str):
        raise InvalidContent.expected(f"trigger.{name}", "a string", value)
    return value


def optional_text(data: Mapping[str, Any], name: str) -> str | None:
    return optional_str(data.get(name), f"trigger.{name}")


def optional_str(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidContent.expected(where, "a string", value)
    return value


def optional_id(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return None if value is None or value == "" else required_id(value, f"trigger.{name}")


def optional_int(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise InvalidContent.expected(f"trigger.{name}", "an integer", value)
    return value


def required_id(value: Any, where: str) -> str:
    """A product id: a non-blank string, or an integer as the cart accepts them."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidContent.expected(where, "a non-empty string", value)
    return value


def id_list(values: Any, where: str) -> list[str]:
    if not isinstance(values, list):
        raise InvalidContent.expected(where, "an array", values)
    return [required_id(value, f"{where}[{n}]") for n, value in enumerate(values)]


def price(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidContent.expected(where, "a finite number >= 0", value)
    return Decimal(str(value))


def optional_price(value: Any, where: str) -> Decimal | None:
    """A price, or ``None`` when the cart does not know it (udfs/cart_items.py writes ``"price": null``)."""
    return None if value is None else price(value, where)


def currency(value: Any, where: str) -> str:
    if value is None or value == "":
        raise InvalidContent(where, "missing")
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isalpha():
        raise InvalidContent.expected(where, "an ISO 4217 code such as 'USD'", value)
    return value.upper()


def absolute_http(url: str) -> str | None:
    """``url`` normalized if it is an absolute http(s) URL, else ``None`` (``javascript:``, ``data:``, relative)."""
    parts = urlsplit(url)
    return urlunsplit(parts) if parts.scheme in ("http", "https") and parts.netloc else None
