"""The delivery stage's records: a validated trigger going in, a delivery record coming out.

The delivery job reads trigger records from ``email.triggers`` (written by the cart job, :mod:`udfs.cart`, and the
intent job, :mod:`udfs.intent`), parses each with :func:`parse_trigger`, asks :func:`udfs.guardrails.decide` what
to do with it, and writes one :class:`DeliveryRecord` per decision to ``email.deliveries``.

:func:`parse_trigger` checks exactly the fields delivery relies on (identity, time, and for cart reminders the
cart that the email shows) and keeps the whole record as :attr:`Trigger.payload` for rendering. A rejection is an
:class:`InvalidTrigger`, which is an :class:`~udfs.events.InvalidEvent`, so
:func:`~udfs.events.dead_letter_record` names the offending field in the dead-letter record.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn, TypedDict

from udfs.events import InvalidEvent, load_json_object

__all__ = [
    "BROWSE_ABANDONMENT",
    "CART_ABANDONMENT",
    "DEFAULT_PRIORITIES",
    "DELIVERY_STATUSES",
    "HIGH_INTENT",
    "TRIGGER_TYPES",
    "DeliveryRecord",
    "InvalidTrigger",
    "Trigger",
    "parse_trigger",
]

CART_ABANDONMENT = "cart_abandonment"
BROWSE_ABANDONMENT = "browse_abandonment"  # same value as udfs.intent.BROWSE_ABANDONMENT
HIGH_INTENT = "high_intent"  # same value as udfs.intent.HIGH_INTENT
#: Trigger types delivery knows how to send; anything else is rejected.
TRIGGER_TYPES: frozenset[str] = frozenset({CART_ABANDONMENT, BROWSE_ABANDONMENT, HIGH_INTENT})
#: Higher goes first when several triggers wait for one person's slot: a cart is worth more than a browse.
DEFAULT_PRIORITIES: Mapping[str, int] = {CART_ABANDONMENT: 30, HIGH_INTENT: 20, BROWSE_ABANDONMENT: 10}
#: ``DeliveryRecord.status`` values: the three decisions, plus what a send attempt can end in.
DELIVERY_STATUSES: frozenset[str] = frozenset({"sent", "suppressed", "deferred", "failed", "uncertain"})

_TRIGGER_ID = re.compile(r"[0-9a-f]{32}")
_EXPECTED_TYPES = ", ".join(sorted(TRIGGER_TYPES))
_JSON_TYPE_NAMES = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
_MAX_SHOWN = 80


class InvalidTrigger(InvalidEvent):
    """A trigger record delivery cannot act on; ``field`` is its dotted path, e.g. ``"items[0].price"``.

    A subclass of :class:`~udfs.events.InvalidEvent` (hence a ``ValueError``), so dead-lettering works the same
    way as for click events. ``field`` is ``""`` when the payload as a whole is unusable.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    """A validated trigger, with the fields the guardrails read lifted out of ``payload``.

    :param template: the cart reminder's template; for the browse types, the trigger type itself.
    :param fired_at_ms: when the upstream job fired it (event time, epoch ms); its age is measured from here.
    :param priority: from the policy's priorities; higher goes first when triggers wait for one slot.
    :param payload: the whole record as received, for rendering; treat it as read-only.
    :param cart_id: cart reminders only (and may be ``None`` there too).
    :param last_change_ms: cart reminders only: event time of the newest cart change the reminder is about.
    :param session_start_ms: browse types only: event time the browsing session started.
    """

    trigger_id: str
    trigger_type: str
    person_id: str
    template: str
    fired_at_ms: int
    priority: int
    payload: Mapping[str, Any] = field(hash=False, repr=False)
    cart_id: str | None = None
    last_change_ms: int | None = None
    session_start_ms: int | None = None


class _CommonFields(TypedDict):
    """The :class:`Trigger` fields every trigger type has."""

    trigger_id: str
    trigger_type: str
    person_id: str
    fired_at_ms: int
    priority: int
    payload: Mapping[str, Any]


def parse_trigger(raw: bytes | str, priorities: Mapping[str, int] = DEFAULT_PRIORITIES) -> Trigger:
    """Validate one ``email.triggers`` record.

    :param raw: the Kafka record value, UTF-8 JSON as bytes, or already-decoded text.
    :param priorities: trigger type to priority, usually ``policy.priorities``; a type it lacks gets 0.
    :raises InvalidTrigger: naming the first field that is missing or malformed.
    """
    doc = load_json_object(raw, InvalidTrigger)
    trigger_id = doc.get("trigger_id")
    if trigger_id is None:
        raise InvalidTrigger("trigger_id", "missing")
    if not isinstance(trigger_id, str) or not _TRIGGER_ID.fullmatch(trigger_id):
        _expected("trigger_id", "32 lowercase hex digits", trigger_id)
    trigger_type = doc.get("trigger_type")
    if not isinstance(trigger_type, str) or trigger_type not in TRIGGER_TYPES:
        problem = "missing" if trigger_type is None else f"{_describe(trigger_type)} is not a known trigger type"
        raise InvalidTrigger("trigger_type", f"{problem}; expected one of {_EXPECTED_TYPES}")
    person_id = _text(doc, "person_id")
    fired_at_ms = _epoch_ms(doc, "fired_at_ms")
    common: _CommonFields = {
        "trigger_id": trigger_id,
        "trigger_type": trigger_type,
        "person_id": person_id,
        "fired_at_ms": fired_at_ms,
        "priority": priorities.get(trigger_type, 0),
        "payload": doc,
    }
    if trigger_type != CART_ABANDONMENT:
        return Trigger(template=trigger_type, session_start_ms=_epoch_ms(doc, "session_start_ms"), **common)

    template = _text(doc, "template")
    last_change_ms = _epoch_ms(doc, "last_change_ms")
    cart_id = doc.get("cart_id")
    if cart_id is not None and not isinstance(cart_id, str):
        _expected("cart_id", "a string or null", cart_id)
    _items(doc.get("items"))
    _amount(doc.get("value"), "value")
    _text(doc, "currency")
    return Trigger(template=template, cart_id=cart_id, last_change_ms=last_change_ms, **common)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRecord:
    """One decision about one trigger, as written to ``email.deliveries``; every decision leaves one.

    :param status: one of :data:`DELIVERY_STATUSES`. ``"uncertain"``: the provider call's outcome is unknown
        (a timeout after sending), so a retry could send twice.
    :param reason: why, for anything but a plain send: ``"holdout"``, ``"unsubscribed"``, ``"frequency_cap"``...
    :param variant: the experiment variant assigned, also for holdout and other suppressions (to measure uplift).
    :param holdout: the person is in the experiment's control group.
    :param attempt: send attempts made so far for this trigger; 0 when none was made.
    :param decided_at_ms: wall-clock time of the decision (epoch ms), not event time.
    :param send_after_ms: for ``"deferred"``: the earliest moment to try again (epoch ms).
    :param detail: free text for people, e.g. the provider's answer; never parsed.
    :param recovered: the decision was made before a crash, whose record was lost with it; this is that record,
        written again from the delivery ledger (the email, if any, went out once, before the crash).
    """

    trigger_id: str
    person_id: str
    trigger_type: str
    template: str
    status: str
    reason: str | None
    decided_at_ms: int
    variant: str | None = None
    holdout: bool = False
    provider: str | None = None
    provider_message_id: str | None = None
    attempt: int = 0
    send_after_ms: int | None = None
    detail: str | None = None
    recovered: bool = False

    def __post_init__(self) -> None:
        if self.status not in DELIVERY_STATUSES:
            expected = ", ".join(sorted(DELIVERY_STATUSES))
            raise ValueError(f"DeliveryRecord.status must be one of {expected}, got {self.status!r}")

    @classmethod
    def for_trigger(
        cls, trigger: Trigger, *, status: str, reason: str | None, decided_at_ms: int, **rest: Any
    ) -> DeliveryRecord:
        """A record about ``trigger``: its identity fields are copied, the rest are given as keywords."""
        return cls(
            trigger_id=trigger.trigger_id,
            person_id=trigger.person_id,
            trigger_type=trigger.trigger_type,
            template=trigger.template,
            status=status,
            reason=reason,
            decided_at_ms=decided_at_ms,
            **rest,
        )

    @property
    def is_final(self) -> bool:
        """The trigger's one final outcome: anything but ``deferred`` (progress) and ``duplicate`` (a note that
        the trigger came in again after its outcome was recorded)."""
        return self.status != "deferred" and self.reason != "duplicate"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        """Compact, key-sorted, ASCII-only JSON: the same record always gives the same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode("ascii")


def _text(doc: Mapping[str, Any], key: str, prefix: str = "") -> str:
    """A non-blank string."""
    value = doc.get(key)
    if value is None:
        raise InvalidTrigger(f"{prefix}{key}", "missing")
    if not isinstance(value, str):
        _expected(f"{prefix}{key}", "a string", value)
    if not value.strip():
        raise InvalidTrigger(f"{prefix}{key}", "must not be empty")
    return value


def _epoch_ms(doc: Mapping[str, Any], key: str) -> int:
    value = doc.get(key)
    if value is None:
        raise InvalidTrigger(key, "missing")
    if not _is_int(value) or value < 0:
        _expected(key, "an integer number of epoch milliseconds", value)
    return int(value)


def _items(items: Any) -> None:
    """The cart lines the email shows: a non-empty array of ``{product_id, name, price, quantity}``.

    ``price`` must be there, but may be ``null``: the event that put the line in the cart had no usable price
    (udfs/cart_items.py), and the email shows the line without one.
    """
    if items is None:
        raise InvalidTrigger("items", "missing")
    if not isinstance(items, list):
        _expected("items", "an array", items)
    if not items:
        raise InvalidTrigger("items", "must not be empty; a cart reminder shows the cart")
    for position, item in enumerate(items):
        prefix = f"items[{position}]"
        if not isinstance(item, dict):
            _expected(prefix, "an object", item)
        _text(item, "product_id", f"{prefix}.")
        name = item.get("name")
        if name is None:
            raise InvalidTrigger(f"{prefix}.name", "missing")
        if not isinstance(name, str):
            _expected(f"{prefix}.name", "a string (may be empty)", name)
        if "price" not in item or item["price"] is not None:
            _amount(item.get("price"), f"{prefix}.price")
        quantity = item.get("quantity")
        if quantity is None:
            raise InvalidTrigger(f"{prefix}.quantity", "missing")
        if not _is_int(quantity) or quantity < 1:
            _expected(f"{prefix}.quantity", "an integer >= 1", quantity)


def _amount(value: Any, name: str) -> None:
    if value is None:
        raise InvalidTrigger(name, "missing")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        _expected(name, "a number", value)
    if not math.isfinite(value) or value < 0:
        _expected(name, "a finite number >= 0", value)


def _expected(name: str, what: str, value: Any) -> NoReturn:
    raise InvalidTrigger(name, f"must be {what}, got {_describe(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    """JSON type plus a short rendering for scalars, worded as :mod:`udfs.events` words it."""
    if isinstance(value, (dict, list)):
        return _json_type(value)
    text = repr(value)
    return f"{_json_type(value)} {text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + '...'}"
