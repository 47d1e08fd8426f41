"""The profile fields an ``identify`` call sets: who the person is and how to reach them.

Segment's reserved traits (https://segment.com/docs/connections/spec/identify/#traits) are read
leniently: a trait of the wrong shape is left out rather than failing the event, since a shop's
identify calls vary and the rest of the event is still good.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["profile_fields_from_traits"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_TRAITS_JSON = 8_192


def _text(traits: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = traits.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _timezone(traits: Mapping[str, Any], context: Mapping[str, Any]) -> str | None:
    for candidate in (traits.get("timezone"), context.get("timezone")):
        if isinstance(candidate, str) and candidate:
            try:
                ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            return candidate
    return None


def profile_fields_from_traits(event: Mapping[str, Any]) -> dict[str, str]:
    """Hash fields from an identify event: ``email``, ``first_name``, ``last_name``, ``timezone``, ``traits``.

    ``timezone`` comes from ``traits.timezone`` or the device's ``context.timezone`` (what analytics.js
    sends), and must be an IANA zone name; quiet hours are computed in it.
    """
    traits = event.get("traits")
    traits = traits if isinstance(traits, Mapping) else {}
    context = event.get("context")
    context = context if isinstance(context, Mapping) else {}
    fields: dict[str, str] = {}
    email = _text(traits, "email")
    if email and _EMAIL.match(email):
        fields["email"] = email.lower()
    first = _text(traits, "first_name", "firstName")
    last = _text(traits, "last_name", "lastName")
    if first is None and (name := _text(traits, "name")):
        first = name.split()[0]
    if first:
        fields["first_name"] = first[:100]
    if last:
        fields["last_name"] = last[:100]
    if zone := _timezone(traits, context):
        fields["timezone"] = zone
    encoded = json.dumps(traits, separators=(",", ":"), sort_keys=True, default=str)
    if len(encoded) <= _MAX_TRAITS_JSON:
        fields["traits"] = encoded
    return fields
