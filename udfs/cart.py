"""Cart abandonment as a pure step function: an event or a timer goes in, the new state and triggers come out.

The Flink adapter keys events by person and keeps one :class:`CartState` per person. It calls
:func:`apply_event` for each event and :func:`fire_timer` when an event-time timer fires. Then it persists
``decision.state`` (``None`` clears it), keeps exactly one pending event-time timer at
``decision.state.next_reminder_ms`` (deleting the old one if it changed), and emits ``decision.triggers``.

Every cart change re-arms the timer (debounce), so a reminder fires only after the cart has been left alone
for ``reminders[0].delay_ms``. Later reminders in the series are measured from the same last change.

How state is cleared: when the cart is empty (a purchase, or everything removed) or the reminder series is
over, ``next_reminder_ms`` becomes the *hold* time: 1 ms after the latest time the state still has to
remember (the last change, the last order so that older cart events count as stale, and the end of the
cooldown). When that timer fires, :func:`fire_timer` returns ``state=None``. This relies on the adapter diverting
events that are behind the watermark (late) before they reach :func:`apply_event`. Otherwise a late
"Product Added" from before a purchase could arrive after the hold and start a new cart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from udfs.cart_items import CartItem, is_int, item_from, optional_id, optional_text, removal_from, snapshot_items
from udfs.events import ClickEvent

__all__ = [
    "CART_EVENTS",
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
#: Track event names this module acts on; every other event leaves the state untouched.
CART_EVENTS: frozenset[str] = frozenset(
    {PRODUCT_ADDED, PRODUCT_REMOVED, CART_VIEWED, CHECKOUT_STARTED, ORDER_COMPLETED}
)

_SNAPSHOT_EVENTS = frozenset({CART_VIEWED, CHECKOUT_STARTED})


@dataclass(slots=True)
class CartState:
    """Everything remembered about one person's cart, between events.

    :param items: cart lines by product id, in the order they were first added.
    :param last_change_ms: event time of the latest change to the cart; reminders are measured from it.
    :param reminders_sent: how many steps of the current reminder series are done (fired, or skipped
        because the cooldown pushed the series past them).
    :param next_reminder_ms: the time of the one pending event-time timer. With items in the cart and
        reminders left it is the next reminder; otherwise it is the hold time after which the state is dropped.
    :param last_trigger_ms: when the latest reminder fired, for the cooldown.
    :param last_order_ms: event time of the latest purchase; older cart events are stale.
    :param recent_message_ids: ids of the latest cart events, oldest first, to drop duplicates.
    """

    cart_id: str | None = None
    items: dict[str, CartItem] = field(default_factory=dict)
    currency: str = "USD"
    last_change_ms: int = 0
    reminders_sent: int = 0
    next_reminder_ms: int | None = None
    last_trigger_ms: int | None = None
    last_order_ms: int | None = None
    recent_message_ids: list[str] = field(default_factory=list)

    @property
    def value(self) -> float:
        """Cart total, rounded to cents."""
        return round(sum(item.price * item.quantity for item in self.items.values()), 2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, which is how the adapter stores the state."""
        return {
            "cart_id": self.cart_id,
            "items": [item.to_dict() for item in self.items.values()],
            "currency": self.currency,
            "last_change_ms": self.last_change_ms,
            "reminders_sent": self.reminders_sent,
            "next_reminder_ms": self.next_reminder_ms,
            "last_trigger_ms": self.last_trigger_ms,
            "last_order_ms": self.last_order_ms,
            "recent_message_ids": list(self.recent_message_ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CartState:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, so adding a field keeps old state readable."""
        items = (CartItem.from_dict(item) for item in data.get("items", ()))
        return cls(
            cart_id=data.get("cart_id"),
            items={item.product_id: item for item in items},
            currency=data.get("currency", "USD"),
            last_change_ms=data.get("last_change_ms", 0),
            reminders_sent=data.get("reminders_sent", 0),
            next_reminder_ms=data.get("next_reminder_ms"),
            last_trigger_ms=data.get("last_trigger_ms"),
            last_order_ms=data.get("last_order_ms"),
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


def apply_event(state: CartState | None, event: ClickEvent, policy: CartPolicy) -> CartDecision:
    """Fold one event into the person's cart.

    The input state is never mutated. Duplicates and non-cart events return it as is.

    :raises InvalidEvent: a cart event whose properties cannot describe a cart (e.g. ``properties.price``).
    """
    if state is not None and event.message_id in state.recent_message_ids:
        return CartDecision(state)
    if event.type != "track" or event.name not in CART_EVENTS:
        return CartDecision(state)

    # Validate before looking at state, so a bad event is rejected the same way whatever came before it.
    props = event.properties
    added = item_from(props, "properties.") if event.name == PRODUCT_ADDED else None
    removal = removal_from(props) if event.name == PRODUCT_REMOVED else None
    snapshot = snapshot_items(props.get("products")) if event.name in _SNAPSHOT_EVENTS else None
    cart_id = optional_id(props.get("cart_id"), "properties.cart_id")
    currency = optional_text(props.get("currency"), "properties.currency")

    new = _copy(state) if state is not None else CartState()
    _remember(new, event.message_id, policy.dedup_window)
    unchanged = CartDecision(new if state is not None else None)
    if new.last_order_ms is not None and event.event_time_ms < new.last_order_ms:
        return unchanged  # from before the latest purchase
    if event.name == ORDER_COMPLETED:
        return _order_completed(new, event.event_time_ms, policy)

    if added is not None:
        items = _with_added(new.items, added)
    elif removal is not None:
        items = _with_removed(new.items, *removal)  # removing what we never saw added is harmless
    elif snapshot is not None and event.event_time_ms >= new.last_change_ms:
        items = snapshot  # authoritative, unless a later change already superseded it
    else:
        items = new.items
    if items == new.items:
        return unchanged

    new.items = items
    if cart_id is not None:
        new.cart_id = cart_id
    if currency is not None:
        new.currency = currency
    new.last_change_ms = max(new.last_change_ms, event.event_time_ms)
    new.reminders_sent = 0
    new.next_reminder_ms = _first_reminder_ms(new, policy) if items else _hold_until(new, policy)
    return CartDecision(new, (), True)


def fire_timer(state: CartState | None, person_id: str, timer_ms: int, policy: CartPolicy) -> CartDecision:
    """Handle the person's event-time timer: send the due reminder, or drop state whose hold has passed.

    A timer that no longer matches ``state.next_reminder_ms`` was superseded by a cart change and is ignored.
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
        items=tuple(state.items.values()),
    )
    new = _copy(state)
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


def _order_completed(state: CartState, event_time_ms: int, policy: CartPolicy) -> CartDecision:
    """A purchase empties the cart and cancels the series; the state is held only to spot stale cart events."""
    had_items = bool(state.items)
    state.items = {}
    state.cart_id = None
    state.last_order_ms = event_time_ms
    if had_items:
        state.last_change_ms = max(state.last_change_ms, event_time_ms)
    state.reminders_sent = 0
    state.next_reminder_ms = _hold_until(state, policy)
    return CartDecision(state, (), had_items)


def _with_added(items: dict[str, CartItem], added: CartItem) -> dict[str, CartItem]:
    """Add to an existing line if there is one; the newest name, price and links win."""
    existing = items.get(added.product_id)
    if existing is not None:
        added = replace(
            added,
            quantity=existing.quantity + added.quantity,
            name=added.name or existing.name,
            image_url=added.image_url or existing.image_url,
            url=added.url or existing.url,
        )
    return {**items, added.product_id: added}


def _with_removed(items: dict[str, CartItem], product_id: str, quantity: int | None) -> dict[str, CartItem]:
    """Reduce a line by ``quantity``; drop it when ``quantity`` is absent or covers the whole line."""
    line = items.get(product_id)
    if line is None:
        return items
    if quantity is not None and quantity < line.quantity:
        return {**items, product_id: replace(line, quantity=line.quantity - quantity)}
    return {key: item for key, item in items.items() if key != product_id}


def _copy(state: CartState) -> CartState:
    return replace(state, items=dict(state.items), recent_message_ids=list(state.recent_message_ids))


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
    then strictly behind the watermark, and the adapter diverts those before :func:`apply_event`.
    """
    latest = state.last_change_ms
    if state.last_order_ms is not None:
        latest = max(latest, state.last_order_ms)
    if state.last_trigger_ms is not None:
        latest = max(latest, state.last_trigger_ms + policy.cooldown_ms)
    return latest + 1
