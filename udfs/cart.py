"""Cart abandonment as a pure step function: an event or a timer goes in, the new state and triggers come out.

The Flink adapter keys events by person and keeps one :class:`CartState` per person. It calls
:func:`apply_event` for each event and :func:`fire_timer` when an event-time timer fires, passing the current
watermark to both. Then it persists ``decision.state`` (``None`` clears it), keeps exactly one pending event-time
timer at ``decision.state.next_reminder_ms`` (deleting the old one if it changed), and emits ``decision.triggers``.

Arrival order does not matter: the cart is a fold over an event-time-sorted log (:mod:`udfs.cart_log`), so the
same set of events gives the same cart, the same timer and the same triggers in any order, and a duplicate
(same message id) counts once. The state is still updated on every event, so the profile is fresh at once.

Every cart op re-arms the timer (debounce), so a reminder fires only after the cart has been left alone for
``reminders[0].delay_ms`` since the newest cart op. Later reminders in the series are measured from the same op.

How state is cleared: when the cart is empty (a purchase, or everything removed) or the reminder series is
over, ``next_reminder_ms`` becomes the *hold* time: 1 ms after the latest time the state still has to
remember (the newest cart op, so older ones count as stale, and the end of the cooldown). When that timer
fires, :func:`fire_timer` returns ``state=None``. This relies on the adapter diverting events that are behind
the watermark (late) before they reach :func:`apply_event`. Otherwise a late "Product Added" from before a
purchase could arrive after the hold and start a new cart. The op log is bounded by compaction: ops behind the
watermark are folded into its base, and at most :data:`~udfs.cart_log.MAX_PENDING_OPS` stay pending.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from udfs.cart_items import CartItem, is_int, item_from, optional_id, optional_text, removal_from, snapshot_items
from udfs.cart_log import DEFAULT_CURRENCY, CartLog, CartOp, OpKind
from udfs.events import ClickEvent

__all__ = [
    "CART_EVENTS",
    "CART_TRANSFERRED",
    "ORDER_COMPLETED",
    "NO_WATERMARK",
    "AbandonmentTrigger",
    "CartDecision",
    "CartItem",
    "CartPolicy",
    "CartState",
    "Reminder",
    "apply_event",
    "fire_timer",
    "make_trigger_id",
]

PRODUCT_ADDED = "Product Added"
PRODUCT_REMOVED = "Product Removed"
CART_VIEWED = "Cart Viewed"
CHECKOUT_STARTED = "Checkout Started"
ORDER_COMPLETED = "Order Completed"
#: Made by the job, not a shop: this person's cart moved to the person they logged in as (:mod:`udfs.identity`).
CART_TRANSFERRED = "Cart Transferred"
_KINDS: dict[str, OpKind] = {
    PRODUCT_ADDED: OpKind.ADD,
    PRODUCT_REMOVED: OpKind.REMOVE,
    CART_VIEWED: OpKind.SNAPSHOT,
    CHECKOUT_STARTED: OpKind.SNAPSHOT,
    ORDER_COMPLETED: OpKind.ORDER,
}
#: Track event names this module acts on; every other event leaves the state untouched.
CART_EVENTS: frozenset[str] = frozenset(_KINDS)
#: What Flink's ``current_watermark()`` returns before the first watermark (``Long.MIN_VALUE``): nothing is late.
NO_WATERMARK = -(2**63)


@dataclass(slots=True)
class CartState:
    """Everything remembered about one person's cart, between events.

    :param log: the cart ops as base plus pending ops; the cart (``items``, ``cart_id``, ``currency``) is its fold.
    :param last_change_ms: event time of the newest cart op; reminders are measured from it.
    :param reminders_sent: how many steps of the current reminder series are done (fired, or skipped
        because the cooldown pushed the series past them).
    :param next_reminder_ms: the time of the one pending event-time timer. With items in the cart and
        reminders left it is the next reminder; otherwise it is the hold time after which the state is dropped.
    :param last_trigger_ms: when the latest reminder fired, for the cooldown.
    :param recent_message_ids: ids of the latest cart events, oldest first. Duplicates of logged ops are caught
        by the log itself; this window also catches a resend whose timestamp differs from the original's.
    """

    log: CartLog = field(default_factory=CartLog)
    last_change_ms: int = 0
    reminders_sent: int = 0
    next_reminder_ms: int | None = None
    last_trigger_ms: int | None = None
    recent_message_ids: list[str] = field(default_factory=list)

    @property
    def items(self) -> Mapping[str, CartItem]:
        """Cart lines by product id, in the order the event-time fold put them; read-only."""
        return self.log.items

    @property
    def cart_id(self) -> str | None:
        return self.log.cart_id

    @property
    def currency(self) -> str:
        return self.log.currency

    @property
    def value(self) -> float:
        """Cart total, rounded to cents."""
        return round(sum(item.price * item.quantity for item in self.items.values()), 2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, which is how the adapter stores the state."""
        return {
            "log": self.log.to_dict(),
            "last_change_ms": self.last_change_ms,
            "reminders_sent": self.reminders_sent,
            "next_reminder_ms": self.next_reminder_ms,
            "last_trigger_ms": self.last_trigger_ms,
            "recent_message_ids": list(self.recent_message_ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CartState:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, so adding a field keeps old state readable.

        The shape before the op log (``items``, ``cart_id``, ``last_order_ms`` at the top) becomes a base holding
        those items, with cart events older than the last purchase still counted as stale (and held for).
        """
        last_change_ms = data.get("last_change_ms", 0)
        if "log" in data:
            log = CartLog.from_dict(data["log"])
        else:
            last_order_ms = data.get("last_order_ms")
            last_change_ms = max(last_change_ms, last_order_ms or last_change_ms)
            log = CartLog(
                base_items=tuple(CartItem.from_dict(item) for item in data.get("items", ())),
                base_key=None if last_order_ms is None else (last_order_ms, ""),  # "" sorts below any message id
                cart_id=data.get("cart_id"),
                currency=data.get("currency", DEFAULT_CURRENCY),
            )
        return cls(
            log=log,
            last_change_ms=last_change_ms,
            reminders_sent=data.get("reminders_sent", 0),
            next_reminder_ms=data.get("next_reminder_ms"),
            last_trigger_ms=data.get("last_trigger_ms"),
            recent_message_ids=list(data.get("recent_message_ids", ())),
        )


@dataclass(frozen=True, slots=True)
class Reminder:
    """One step of the series: send ``template`` once the cart has been untouched for ``delay_ms``."""

    delay_ms: int
    template: str

    def __post_init__(self) -> None:
        if not is_int(self.delay_ms) or self.delay_ms <= 0:
            raise ValueError(f"Reminder.delay_ms must be a positive integer (ms), got {self.delay_ms!r}")
        if not isinstance(self.template, str) or not self.template:
            raise ValueError(f"Reminder.template must be a non-empty string, got {self.template!r}")


@dataclass(frozen=True, slots=True)
class CartPolicy:
    """How reminders are spaced and capped.

    :param reminders: the series, delays strictly increasing; at least one.
    :param cooldown_ms: a *new* series never fires before ``last_trigger_ms + cooldown_ms``; ``>= 0``.
    :param max_reminders: caps the series at ``min(len(reminders), max_reminders)``; ``>= 1``.
    :param dedup_window: how many recent cart-event message ids to remember; ``>= 0`` (0 disables dedup).
    """

    reminders: tuple[Reminder, ...]
    cooldown_ms: int
    max_reminders: int
    dedup_window: int

    def __post_init__(self) -> None:
        reminders = tuple(self.reminders)  # accept a list from config, store a tuple so the policy stays hashable
        object.__setattr__(self, "reminders", reminders)
        if not reminders:
            raise ValueError("CartPolicy.reminders must hold at least one Reminder")
        if not all(isinstance(reminder, Reminder) for reminder in reminders):
            raise ValueError("CartPolicy.reminders must hold only Reminder objects")
        delays = [reminder.delay_ms for reminder in reminders]
        if any(later <= earlier for earlier, later in zip(delays, delays[1:], strict=False)):
            raise ValueError(f"CartPolicy.reminders delays must be strictly increasing, got {delays}")
        if not is_int(self.cooldown_ms) or self.cooldown_ms < 0:
            raise ValueError(f"CartPolicy.cooldown_ms must be an integer >= 0, got {self.cooldown_ms!r}")
        if not is_int(self.max_reminders) or self.max_reminders < 1:
            raise ValueError(f"CartPolicy.max_reminders must be an integer >= 1, got {self.max_reminders!r}")
        if not is_int(self.dedup_window) or self.dedup_window < 0:
            raise ValueError(f"CartPolicy.dedup_window must be an integer >= 0, got {self.dedup_window!r}")

    @property
    def series_length(self) -> int:
        """How many reminders one series can send."""
        return min(len(self.reminders), self.max_reminders)


@dataclass(frozen=True, slots=True, kw_only=True)
class AbandonmentTrigger:
    """Ask delivery to send one reminder; ``trigger_id`` is stable across replays, so delivery dedups on it."""

    trigger_id: str
    trigger_type: str = "cart_abandonment"
    person_id: str
    cart_id: str | None
    reminder_index: int
    template: str
    fired_at_ms: int
    last_change_ms: int
    currency: str
    value: float
    items: tuple[CartItem, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger_id": self.trigger_id,
            "trigger_type": self.trigger_type,
            "person_id": self.person_id,
            "cart_id": self.cart_id,
            "reminder_index": self.reminder_index,
            "template": self.template,
            "fired_at_ms": self.fired_at_ms,
            "last_change_ms": self.last_change_ms,
            "currency": self.currency,
            "value": self.value,
            "items": [item.to_dict() for item in self.items],
        }

    def to_json(self) -> bytes:
        """Compact, key-sorted, ASCII-only JSON: byte-identical on replay and always encodable."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True, slots=True)
class CartDecision:
    """What one step decided.

    :param state: the state to persist; ``None`` clears it (and with it any timer).
    :param triggers: reminders to emit, in order.
    :param cart_changed: the cart's content changed, so the person's profile needs writing.
    """

    state: CartState | None
    triggers: tuple[AbandonmentTrigger, ...] = ()
    cart_changed: bool = False


def make_trigger_id(person_id: str, cart_id: str | None, last_change_ms: int, reminder_index: int) -> str:
    """Deterministic id, so a replay or a restart re-emits the same trigger and delivery sends it once."""
    key = f"{person_id}|{cart_id or ''}|{last_change_ms}|{reminder_index}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def apply_event(
    state: CartState | None, event: ClickEvent, policy: CartPolicy, *, watermark_ms: int = NO_WATERMARK
) -> CartDecision:
    """Fold one event into the person's cart, at its event-time place whatever order the events arrive in.

    The input state is never mutated. Duplicates and non-cart events return it as is.

    :param watermark_ms: the operator's current watermark; ops older than it are compacted into the log's base.
        The caller must have diverted events older than it (late) already. Default: no watermark yet.
    :raises InvalidEvent: a cart event whose properties cannot describe a cart (e.g. ``properties.price``).
    """
    if state is not None and (event.message_id in state.recent_message_ids or state.log.has_message(event.message_id)):
        return CartDecision(state)
    if event.type == "track" and event.name == CART_TRANSFERRED:
        return CartDecision(None, (), cart_changed=state is not None and bool(state.items))
    if event.type != "track" or event.name not in CART_EVENTS:
        return CartDecision(state)

    op = _op_from(event)  # validate before looking at state, so a bad event is rejected whatever came before it
    new = _copy(state) if state is not None else CartState()
    _remember(new, event.message_id, policy.dedup_window)
    if op is None:
        return CartDecision(new if state is not None else None)  # a snapshot event without products

    old = state if state is not None else CartState()
    new.log = new.log.apply(op).compacted(watermark_ms)
    new.last_change_ms = max(new.last_change_ms, op.event_time_ms)
    cart_changed = _cart_view(new) != _cart_view(old)
    if cart_changed or new.last_change_ms != old.last_change_ms:
        new.reminders_sent = 0
        new.next_reminder_ms = _first_reminder_ms(new, policy) if new.items else _hold_until(new, policy)
    return CartDecision(new, (), cart_changed)


def fire_timer(
    state: CartState | None, person_id: str, timer_ms: int, policy: CartPolicy, *, watermark_ms: int = NO_WATERMARK
) -> CartDecision:
    """Handle the person's event-time timer: send the due reminder, or drop state whose hold has passed.

    A timer that no longer matches ``state.next_reminder_ms`` was superseded by a cart change and is ignored.

    :param watermark_ms: the operator's current watermark, to compact the log as in :func:`apply_event`.
    """
    if state is None or timer_ms != state.next_reminder_ms:
        return CartDecision(state)
    if not state.items or state.reminders_sent >= policy.series_length:
        return CartDecision(None)  # the hold timer: nothing left to remember

    index = state.reminders_sent + 1
    trigger = AbandonmentTrigger(
        trigger_id=make_trigger_id(person_id, state.cart_id, state.last_change_ms, index),
        person_id=person_id,
        cart_id=state.cart_id,
        reminder_index=index,
        template=policy.reminders[state.reminders_sent].template,
        fired_at_ms=timer_ms,
        last_change_ms=state.last_change_ms,
        currency=state.currency,
        value=state.value,
        items=tuple(sorted(state.items.values(), key=_product_id)),  # sorted: byte-identical on any arrival order
    )
    new = _copy(state)
    new.log = new.log.compacted(watermark_ms)
    new.last_trigger_ms = timer_ms
    # Skip reminders that the cooldown already pushed us past, rather than sending them back to back.
    while index < policy.series_length and _reminder_ms(new, policy, index) <= timer_ms:
        index += 1
    new.reminders_sent = index
    if index < policy.series_length:
        new.next_reminder_ms = _reminder_ms(new, policy, index)
    else:
        hold = _hold_until(new, policy)
        if hold <= timer_ms:
            return CartDecision(None, (trigger,))
        new.next_reminder_ms = hold
    return CartDecision(new, (trigger,))


def _op_from(event: ClickEvent) -> CartOp | None:
    """The event as a cart op, validating every property it uses; ``None`` for a snapshot event without products."""
    props, kind = event.properties, _KINDS[event.name]
    items: tuple[CartItem, ...] = ()
    product_id: str | None = None
    quantity: int | None = None
    snapshot = snapshot_items(props.get("products")) if kind is OpKind.SNAPSHOT else None
    if kind is OpKind.ADD:
        items = (item_from(props, "properties."),)
    elif kind is OpKind.REMOVE:
        product_id, quantity = removal_from(props)
    elif snapshot is not None:
        items = tuple(snapshot.values())
    cart_id = optional_id(props.get("cart_id"), "properties.cart_id")
    currency = optional_text(props.get("currency"), "properties.currency")
    if kind is OpKind.SNAPSHOT and snapshot is None:
        return None
    return CartOp(kind, event.event_time_ms, event.message_id, items, product_id, quantity, cart_id, currency)


def _cart_view(state: CartState) -> tuple[Mapping[str, CartItem], str, str | None]:
    """What the profile shows of the cart; a step changed the cart exactly when this changed."""
    return state.items, state.currency, state.cart_id


def _product_id(item: CartItem) -> str:
    return item.product_id


def _copy(state: CartState) -> CartState:
    return replace(state, recent_message_ids=list(state.recent_message_ids))


def _remember(state: CartState, message_id: str, window: int) -> None:
    ids = state.recent_message_ids
    ids.append(message_id)
    if len(ids) > window:
        del ids[: len(ids) - window]


def _reminder_ms(state: CartState, policy: CartPolicy, index: int) -> int:
    return state.last_change_ms + policy.reminders[index].delay_ms


def _first_reminder_ms(state: CartState, policy: CartPolicy) -> int:
    cooldown_end = state.last_trigger_ms + policy.cooldown_ms if state.last_trigger_ms is not None else 0
    return max(_reminder_ms(state, policy, 0), cooldown_end)


def _hold_until(state: CartState, policy: CartPolicy) -> int:
    """When the state can go: just after the latest time it remembers, so every event it could matter to is late.

    A timer at ``T`` fires once the watermark reaches ``T``; events at or before the latest remembered time are
    then strictly behind the watermark, and the adapter diverts those before :func:`apply_event`. The newest
    cart op bounds every op in the log, a purchase included.
    """
    latest = state.last_change_ms
    if state.last_trigger_ms is not None:
        latest = max(latest, state.last_trigger_ms + policy.cooldown_ms)
    return latest + 1
