"""The delivery stage's checks, as pure functions: should this trigger be sent now, later, or not at all?

The delivery job keys triggers by person and, for each one it considers (on arrival, and again when a deferral
ends), reads the person's profile from Redis, looks the email up in the suppression list, reads the send times
it keeps for the frequency cap, and calls :func:`decide`. The :class:`Verdict` applies these rules in order; the
first that holds wins and names the reason:

==========  ================  =============================================================================
action      reason            when
==========  ================  =============================================================================
suppress    ``stale``         ``now - fired_at_ms > max_trigger_age_ms``: too late to be relevant
suppress    ``holdout``       the person is in the experiment's control group (variant still assigned)
suppress    ``no_email``      the profile's ``email`` is missing, blank, or does not look like an address
suppress    ``unsubscribed``  the caller found the address on the suppression list
suppress    ``cart_empty``    cart reminder, and the profile's cart is empty now (bought or emptied)
suppress    ``cart_changed``  cart reminder, and the cart changed after it; a newer reminder will follow
suppress    ``carted_since``  browse types, and the person put something in the cart since the session began
defer       ``frequency_cap`` ``frequency_cap`` sends within the window already; retry when a slot frees
defer       ``quiet_hours``   it is night where the person lives; retry when quiet hours end
send        ``None``          none of the above
==========  ================  =============================================================================

Holdout and variant are hashes of the person id and the experiment name, so they are the same on every run,
machine and replay, and each person stays in one group for the experiment's life. All times are epoch ms.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from udfs.delivery import CART_ABANDONMENT, DeliveryRecord, Trigger
from udfs.guardrail_policy import GuardrailPolicy, first_wall_time_after, parse_hhmm, resolve_zone

__all__ = [
    "VERDICT_ACTIONS",
    "GuardrailPolicy",
    "InvalidProfile",
    "Pending",
    "Verdict",
    "assign_variant",
    "decide",
    "frequency_decision",
    "in_holdout",
    "next_allowed_ms",
    "pick_next",
    "queue_order",
    "still_valid",
]

#: ``Verdict.action`` values.
VERDICT_ACTIONS: frozenset[str] = frozenset({"send", "defer", "suppress"})
_STATUS = {"defer": "deferred", "suppress": "suppressed"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")  # deliberately loose: one @, a dotted domain, no spaces


class InvalidProfile(ValueError):
    """A profile field that cannot be read; ``field`` is the Redis hash field, e.g. ``"cart"``.

    Not an :class:`~udfs.delivery.InvalidTrigger`: the trigger is fine, and dead-lettering it would hide a
    problem in the profile writer.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"profile field {self.field!r}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one trigger now.

    :param action: ``"send"``, ``"defer"`` or ``"suppress"``.
    :param reason: why it was deferred or suppressed (the module docstring lists them); ``None`` for a send.
    :param send_after_ms: for a deferral, when to consider the trigger again.
    :param variant: the person's variant; ``None`` only for stale triggers, which never reach the experiment.
    :param holdout: the person is in the control group (then the action is always ``"suppress"``).
    """

    action: str
    reason: str | None = None
    send_after_ms: int | None = None
    variant: str | None = None
    holdout: bool = False

    def __post_init__(self) -> None:
        if self.action not in VERDICT_ACTIONS:
            raise ValueError(f"Verdict.action must be one of send, defer, suppress; got {self.action!r}")

    def to_record(self, trigger: Trigger, decided_at_ms: int, *, attempt: int = 0) -> DeliveryRecord:
        """The delivery record of a deferral or suppression; a send's record needs the provider's answer.

        :raises ValueError: the verdict is a send.
        """
        if self.action == "send":
            raise ValueError("a send is recorded after the provider answers (sent, failed or uncertain)")
        return DeliveryRecord.for_trigger(
            trigger,
            status=_STATUS[self.action],
            reason=self.reason,
            decided_at_ms=decided_at_ms,
            variant=self.variant,
            holdout=self.holdout,
            attempt=attempt,
            send_after_ms=self.send_after_ms,
        )


class Pending(Protocol):
    """Anything that waits for a person's send slot: a :class:`~udfs.delivery.Trigger`, or the job's own record."""

    @property
    def priority(self) -> int: ...
    @property
    def fired_at_ms(self) -> int: ...
    @property
    def trigger_id(self) -> str: ...


_P = TypeVar("_P", bound=Pending)


def decide(
    trigger: Trigger,
    profile: Mapping[str, str],
    suppressed: bool,
    sent_at_ms: Sequence[int],
    now_ms: int,
    policy: GuardrailPolicy,
) -> Verdict:
    """Apply the guardrails in the module docstring's order to one trigger.

    :param profile: the person's profile hash as read from Redis (strings); ``{}`` when there is none.
    :param suppressed: the profile's email is on the suppression list (the caller looked it up).
    :param sent_at_ms: when this person was last sent emails (wall clock); older ones may be included.
    :param now_ms: wall-clock time of the decision.
    :raises InvalidProfile: a profile field the checks need cannot be read.
    """
    if now_ms - trigger.fired_at_ms > policy.max_trigger_age_ms:
        return Verdict("suppress", "stale")
    variant = assign_variant(trigger.person_id, policy)
    if in_holdout(trigger.person_id, policy):
        return Verdict("suppress", "holdout", variant=variant, holdout=True)
    if not _looks_like_email(profile.get("email")):
        return Verdict("suppress", "no_email", variant=variant)
    if suppressed:
        return Verdict("suppress", "unsubscribed", variant=variant)
    reason = still_valid(trigger, profile)
    if reason is not None:
        return Verdict("suppress", reason, variant=variant)
    timezone = profile.get("timezone")
    slot_ms = frequency_decision(sent_at_ms, now_ms, policy)
    if slot_ms is not None:
        # Wake up when a slot frees *and* it is daytime, rather than waking up only to defer again.
        return Verdict("defer", "frequency_cap", next_allowed_ms(slot_ms, timezone, policy), variant)
    allowed_ms = next_allowed_ms(now_ms, timezone, policy)
    if allowed_ms != now_ms:
        return Verdict("defer", "quiet_hours", allowed_ms, variant)
    return Verdict("send", variant=variant)


def in_holdout(person_id: str, policy: GuardrailPolicy) -> bool:
    """Whether the person is in the control group: ``holdout_percent`` of people, the same ones on every run."""
    return _hash64(f"holdout|{policy.experiment}|{person_id}") % 10_000 < policy.holdout_percent * 100


def assign_variant(person_id: str, policy: GuardrailPolicy) -> str:
    """The person's variant, drawn in proportion to the weights; the same on every run.

    Independent of :func:`in_holdout` (a different hash), so the holdout takes the same share of every variant.
    """
    total = sum(weight for _, weight in policy.variants)
    point = _hash64(f"variant|{policy.experiment}|{person_id}") / 2**64 * total
    cumulative = 0.0
    for name, weight in policy.variants:
        cumulative += weight
        if point < cumulative:
            return name
    return next(name for name, weight in reversed(policy.variants) if weight > 0)  # float rounding at the very top


def still_valid(trigger: Trigger, profile: Mapping[str, str]) -> str | None:
    """Whether what fired the trigger still holds at send time: a suppression reason, or ``None`` to go on.

    Missing fields contradict nothing, so they give ``None``. An empty cart that is older than a reminder's
    cart (``cart_updated_ms < last_change_ms``) is a stale snapshot and says nothing about that cart either.

    :raises InvalidProfile: ``cart`` is not a JSON cart, or ``cart_updated_ms`` is not an integer.
    """
    items = _cart_items(profile)
    updated_ms = _optional_int(profile, "cart_updated_ms")
    if trigger.trigger_type == CART_ABANDONMENT:
        last_change_ms = trigger.last_change_ms
        newer = updated_ms is not None and last_change_ms is not None and updated_ms > last_change_ms
        older = updated_ms is not None and last_change_ms is not None and updated_ms < last_change_ms
        if items is not None and not items and not older:
            return "cart_empty"
        return "cart_changed" if newer else None
    session_start_ms = trigger.session_start_ms
    if items and updated_ms is not None and session_start_ms is not None and updated_ms >= session_start_ms:
        return "carted_since"
    return None


def next_allowed_ms(now_ms: int, timezone: str | None, policy: GuardrailPolicy) -> int:
    """``now_ms`` outside quiet hours in the person's zone, else the moment quiet hours end there.

    Works on wall-clock time, so 08:00 stays 08:00 across a DST change. If the end time falls in a DST gap
    (it does not exist that day), sending resumes when the clock jumps past it; if it occurs twice (clocks go
    back), at its first occurrence after ``now_ms``.

    :param timezone: an IANA zone name; ``None``, blank or unknown falls back to ``policy.default_timezone``.
    """
    if not policy.has_quiet_hours:
        return now_ms
    start, end = parse_hhmm(policy.quiet_start), parse_hhmm(policy.quiet_end)
    zone = resolve_zone(timezone, policy.default_timezone)
    local = (_EPOCH + now_ms * _ONE_MS).astimezone(zone)
    wall = local.time()
    wraps = start > end
    quiet = (wall >= start or wall < end) if wraps else start <= wall < end
    if not quiet:
        return now_ms
    day = local.date() + timedelta(days=1 if wraps and wall >= start else 0)
    return first_wall_time_after(day, end, zone, now_ms)


def frequency_decision(sent_at_ms: Sequence[int], now_ms: int, policy: GuardrailPolicy) -> int | None:
    """``None`` if the cap allows a send now, else the moment the next slot frees.

    Sends count while they are in the window ``(now - frequency_window_ms, now]``, so one sent exactly a
    window ago no longer counts, and the slot frees exactly ``frequency_window_ms`` after a send.
    """
    window = policy.frequency_window_ms
    counted = sorted(t for t in sent_at_ms if now_ms - window < t <= now_ms)
    excess = len(counted) - policy.frequency_cap
    if excess < 0:
        return None
    return counted[excess] + window  # the send whose expiry brings the count below the cap


def pick_next(pending: Sequence[_P]) -> _P:
    """The trigger to send when several wait for one person's slot: see :func:`queue_order`.

    :raises ValueError: nothing is pending.
    """
    if not pending:
        raise ValueError("pick_next needs at least one pending trigger")
    return min(pending, key=queue_order)


def queue_order(trigger: Pending) -> tuple[int, int, str]:
    """Sort key: highest priority first, then the older trigger, then the smaller id (so ties are stable)."""
    return -trigger.priority, trigger.fired_at_ms, trigger.trigger_id


def _hash64(key: str) -> int:
    """First 8 bytes of SHA-256 as an unsigned big-endian integer; lone surrogates from JSON hash too."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big")


def _looks_like_email(value: Any) -> bool:
    return isinstance(value, str) and _EMAIL.fullmatch(value.strip()) is not None


def _cart_items(profile: Mapping[str, str]) -> list[Any] | None:
    """The profile cart's lines; ``None`` when there is no cart field. ``[]`` on its own is an empty cart too."""
    raw = profile.get("cart")
    if raw is None or not raw.strip():
        return None
    try:
        cart = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidProfile("cart", f"not valid JSON ({exc})") from None
    items = cart.get("items") if isinstance(cart, dict) else cart
    if not isinstance(items, list):
        raise InvalidProfile("cart", "must be a JSON object with an items array")
    return items


def _optional_int(profile: Mapping[str, str], name: str) -> int | None:
    raw = profile.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidProfile(name, f"must be an integer, got {raw[:40]!r}") from None
