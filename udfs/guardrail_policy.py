"""The delivery guardrails' settings, checked once when the job starts rather than on every trigger, and the
wall-clock arithmetic that quiet hours need.

:mod:`udfs.guardrails` applies them and re-exports :class:`GuardrailPolicy`; import it from there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from udfs.delivery import DEFAULT_PRIORITIES, TRIGGER_TYPES

__all__ = ["DAY_MS", "GuardrailPolicy", "first_wall_time_after", "parse_hhmm", "resolve_zone"]

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardrailPolicy:
    """What delivery may send, to whom, how often and when.

    :param holdout_percent: share of people (0-100) who never get these emails, to measure uplift; default 10.
    :param experiment: names the experiment; holdout and variants are drawn per experiment, so a new name
        reshuffles everyone. Must not contain ``|``, the hash key's separator.
    :param variants: ``(name, weight)`` pairs; a person's variant is drawn in proportion to the weights (>= 0,
        summing to more than 0). A list or a ``{name: weight}`` mapping from config is stored as a tuple of pairs,
        in its order. Default: A and B, half each.
    :param frequency_cap: at most this many sends per person within ``frequency_window_ms``; >= 1, default 2.
    :param frequency_window_ms: the cap's sliding window (ms); > 0, default 24 h.
    :param priorities: trigger type to priority, higher first; must name every trigger type. Left out of the
        hash (a dict is unhashable); equality still compares it.
    :param quiet_start: local wall-clock ``HH:MM`` from which nothing is sent; default ``"21:00"``.
    :param quiet_end: local ``HH:MM`` when sending resumes; default ``"08:00"``. The window wraps midnight when
        it ends before it starts; equal start and end mean no quiet hours.
    :param default_timezone: IANA zone for people whose profile has no usable ``timezone``; default ``"UTC"``.
    :param max_trigger_age_ms: a trigger older than this when considered is suppressed as stale; > 0,
        default 3 days.
    """

    holdout_percent: float = 10.0
    experiment: str = "default"
    variants: tuple[tuple[str, float], ...] = (("A", 50), ("B", 50))
    frequency_cap: int = 2
    frequency_window_ms: int = DAY_MS
    priorities: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PRIORITIES), hash=False)
    quiet_start: str = "21:00"
    quiet_end: str = "08:00"
    default_timezone: str = "UTC"
    max_trigger_age_ms: int = 3 * DAY_MS

    def __post_init__(self) -> None:
        if not _is_number(self.holdout_percent) or not 0 <= self.holdout_percent <= 100:
            _invalid("holdout_percent", "a number from 0 to 100", self.holdout_percent)
        if not isinstance(self.experiment, str) or not self.experiment.strip() or "|" in self.experiment:
            _invalid("experiment", "a non-empty string without '|'", self.experiment)
        object.__setattr__(self, "variants", _variants(self.variants))
        if not _is_int(self.frequency_cap) or self.frequency_cap < 1:
            _invalid("frequency_cap", "an integer >= 1", self.frequency_cap)
        if not _is_int(self.frequency_window_ms) or self.frequency_window_ms <= 0:
            _invalid("frequency_window_ms", "an integer > 0 (ms)", self.frequency_window_ms)
        object.__setattr__(self, "priorities", _priorities(self.priorities))
        for name in ("quiet_start", "quiet_end"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _HHMM.fullmatch(value):
                _invalid(name, "a 24-hour time HH:MM", value)
        if not isinstance(self.default_timezone, str) or _zone(self.default_timezone) is None:
            _invalid("default_timezone", "an IANA time zone name such as 'Europe/Berlin'", self.default_timezone)
        if not _is_int(self.max_trigger_age_ms) or self.max_trigger_age_ms <= 0:
            _invalid("max_trigger_age_ms", "an integer > 0 (ms)", self.max_trigger_age_ms)

    @property
    def has_quiet_hours(self) -> bool:
        return self.quiet_start != self.quiet_end


def parse_hhmm(value: str) -> time:
    """``"21:00"`` as a :class:`~datetime.time`; the policy has validated the format already."""
    return time(int(value[:2]), int(value[3:5]))


def resolve_zone(name: Any, default: str) -> ZoneInfo:
    """The zone called ``name``; ``default`` when it is missing, blank, not a string, or not a known zone.

    A profile's ``timezone`` comes from a browser or a CRM; a bad one must not stop the email, only its timing
    falls back to the default zone.
    """
    zone = _zone(name) if isinstance(name, str) and name.strip() else None
    if zone is None:
        zone = _zone(default)
    if zone is None:
        raise ValueError(f"default time zone {default!r} is not a known IANA zone")
    return zone


def first_wall_time_after(day: date, at: time, zone: ZoneInfo, after_ms: int) -> int:
    """The first instant after ``after_ms`` (epoch ms) when the wall clock in ``zone`` reaches ``at``, from ``day`` on.

    DST-proof: when ``at`` occurs twice (clocks go back) the first occurrence after ``after_ms`` wins; when it
    does not occur (a DST gap), the instant the clock jumps past it.
    """
    for offset in range(3):  # found on the first day, unless the zone skipped that day (Samoa, 2011)
        wall = datetime.combine(day + timedelta(days=offset), at)
        instants = [_ms(wall.replace(tzinfo=zone, fold=fold)) for fold in (0, 1)]
        existing = [ms for ms in instants if _wall(ms, zone) == wall]  # two when clocks go back, else one
        candidates = existing or [_jump_past(wall, zone, min(instants), max(instants))]
        later = [ms for ms in candidates if ms > after_ms]
        if later:
            return min(later)
    raise AssertionError(f"no {at} after {after_ms} in {zone}")  # pragma: no cover


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    """Cached, so a bad name does not hit the file system on every trigger."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown; malformed key; a directory or too long a name
        return None


def _variants(variants: Any) -> tuple[tuple[str, float], ...]:
    if isinstance(variants, Mapping):  # ``{A: 50, B: 50}`` as the job's YAML writes it
        variants = variants.items()
    try:
        pairs = tuple((name, weight) for name, weight in variants)
    except (TypeError, ValueError):
        _invalid("variants", "(name, weight) pairs", variants)
    if not pairs:
        _invalid("variants", "at least one (name, weight) pair", variants)
    names = [name for name, _ in pairs]
    for name, weight in pairs:
        if not isinstance(name, str) or not name.strip():
            _invalid("variants", "pairs whose names are non-empty strings", name)
        if not _is_number(weight) or not math.isfinite(weight) or weight < 0:
            _invalid("variants", f"a finite weight >= 0 for {name!r}", weight)
    if len(set(names)) != len(names):
        _invalid("variants", "distinct names", names)
    if sum(weight for _, weight in pairs) <= 0:
        _invalid("variants", "weights summing to more than 0", pairs)
    return pairs


def _priorities(priorities: Any) -> dict[str, int]:
    if not isinstance(priorities, Mapping):
        _invalid("priorities", "a mapping of trigger type to integer", priorities)
    unknown = sorted(set(priorities) - TRIGGER_TYPES)
    missing = sorted(TRIGGER_TYPES - set(priorities))
    if unknown or missing:
        _invalid("priorities", f"exactly the trigger types (unknown: {unknown}, missing: {missing})", priorities)
    for trigger_type, priority in priorities.items():
        if not _is_int(priority):
            _invalid("priorities", f"an integer for {trigger_type!r}", priority)
    return dict(priorities)  # a copy, so the caller's dict can change without changing the policy


def _invalid(name: str, what: str, value: Any) -> NoReturn:
    raise ValueError(f"GuardrailPolicy.{name} must be {what}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _jump_past(wall: datetime, zone: ZoneInfo, low_ms: int, high_ms: int) -> int:
    """In a DST gap ``wall`` never shows; this is the instant the clock jumps past it, found by bisection."""
    while low_ms < high_ms:  # the local clock only moves forward here, so the predicate is monotonic
        middle = (low_ms + high_ms) // 2
        if _wall(middle, zone) >= wall:
            high_ms = middle
        else:
            low_ms = middle + 1
    return low_ms


def _wall(ms: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + ms * _ONE_MS).astimezone(zone).replace(tzinfo=None)


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MS
