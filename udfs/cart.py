"""Cart abandonment as a pure step function: an event or a timer goes in, the new state and triggers come out.

The rule, in event time alone (so a replay, a catch-up or any arrival order within the lateness bound gives
the same triggers). Take a person's cart ops in event-time order (an op at time T before a reminder due at T):

- every cart op (add, remove, snapshot, order) changes the cart and starts the series again: reminder ``k`` is
  due at ``last change + reminders[k].delay``, the first one of a series no sooner than ``last reminder +
  cooldown``; a reminder the cooldown pushed past a later step's time is skipped;
- a reminder due at D is sent when the cart holds items at D, with the cart *as it was at D*; ops after D
  count only for what comes after D;
- with no reminder left (cart empty or series over), the cart is forgotten just after the later of its last
  change and the end of the cooldown; an op after that starts a new cart.

The Flink adapter keys events by person and keeps one :class:`CartState` per person. It calls
:func:`apply_event` for each event and :func:`fire_timer` when an event-time timer fires, passing the current
watermark to both. Then it persists ``decision.state`` (``None`` clears it), keeps exactly one pending event-time
timer at ``decision.state.next_reminder_ms`` (deleting the old one if it changed), and emits ``decision.triggers``.

How the state gets there: an event's op waits in the log (:mod:`udfs.cart_log`) until the watermark passes it;
each step walks the series forward to the watermark (:func:`_decide`), and the one timer sits at the first
reminder that the pending ops leave due (or at the hold). Since the watermark never passes an armed timer
without firing it, the walk up to the watermark only ever folds ops in; a timer's walk fires the reminders.
The profile still sees every op at once (:attr:`CartState.items` folds the pending ones too). Duplicates
(same message id) count once. This relies on the adapter diverting events at or behind the watermark (late)
before they reach :func:`apply_event`. The log stays small: what the watermark passed is folded into its base,
and at most :data:`~udfs.cart_log.MAX_PENDING_OPS` ops wait (a bot's oldest are decided early).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from udfs.cart_items import CartItem, is_int, item_from, removal_from, snapshot_items, usable_currency, usable_id
from udfs.cart_log import MAX_PENDING_OPS, Cart, CartLog, CartOp, OpKind, op_units
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
    "profile_cart",
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
#: The shop's cart events (track event names); every other event but a transfer leaves the state untouched.
CART_EVENTS: frozenset[str] = frozenset(_KINDS)
_KINDS[CART_TRANSFERRED] = OpKind.TRANSFER
#: What Flink's ``current_watermark()`` returns before the first watermark (``Long.MIN_VALUE``): nothing is late.
NO_WATERMARK = -(2**63)


@dataclass(slots=True)
class CartState:
    """Everything remembered about one person's cart, between events.

    The series fields describe the cart *as of* ``clock_ms``: every op at or before it is folded into the
    log's base and every reminder due at or before it has been decided. Ops after it wait in the log, so an
    event that arrives early (its partition ran ahead) cannot change a reminder due before it.

    :param log: the cart ops as base plus pending ops; :attr:`items` is the fold of all of them (the profile).
    :param clock_ms: the event time up to which the series is decided (the watermark, at the latest step).
    :param last_change_ms: event time of the newest cart op at or before ``clock_ms``; reminders count from it.
    :param reminders_sent: how many steps of the current series are done (fired, or skipped because the
        cooldown pushed the series past them).
    :param next_reminder_ms: the time of the one pending event-time timer: the first reminder the pending ops
        leave due, else the hold time after which the state is dropped.
    :param last_trigger_ms: when the latest reminder fired, for the cooldown.
    :param recent_message_ids: ids of the latest cart events, oldest first. Duplicates of pending ops are caught
        by the log itself; this window also catches a resend whose timestamp differs from the original's.
    """

    log: CartLog = field(default_factory=CartLog)
    clock_ms: int = NO_WATERMARK
    last_change_ms: int | None = None
    reminders_sent: int = 0
    next_reminder_ms: int | None = None
    last_trigger_ms: int | None = None
    recent_message_ids: list[str] = field(default_factory=list)

    @property
    def items(self) -> Mapping[str, CartItem]:
        """Cart lines by product id with every op that arrived, in the order the fold put them; read-only."""
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
        return _value(self.items.values())

    @property
    def newest_change_ms(self) -> int:
        """Event time of the newest cart op that arrived: what the profile's cart is as of."""
        return max(self.last_change_ms or 0, self.log.newest_ms or 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, which is how the adapter stores the state."""
        return {
            "log": self.log.to_dict(),
            "clock_ms": self.clock_ms,
            "last_change_ms": self.last_change_ms,
            "reminders_sent": self.reminders_sent,
            "next_reminder_ms": self.next_reminder_ms,
            "last_trigger_ms": self.last_trigger_ms,
            "recent_message_ids": list(self.recent_message_ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CartState:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, so adding a field keeps old state readable.

        State written before the series had a clock reads as decided up to its newest folded op; the shape
        before the op log (``items``, ``cart_id``, ``last_order_ms`` at the top) as decided up to its last change
        or purchase, so cart events older than that purchase still count as stale (and are held for).
        """
        last_change_ms = data.get("last_change_ms") or None
        if "log" in data:
            log = CartLog.from_dict(data["log"])
            clock = data.get("clock_ms", log.base_key[0] if log.base_key else NO_WATERMARK)
        else:
            last_change_ms = max(last_change_ms or 0, data.get("last_order_ms") or 0) or None
            clock = last_change_ms if last_change_ms is not None else NO_WATERMARK
            items = (CartItem.from_dict(item) for item in data.get("items", ()))
            base = Cart({item.product_id: item for item in items}, data.get("cart_id"), data.get("currency", "USD"))
            log = CartLog(base, None if last_change_ms is None else (clock, "", clock, ""))
        return cls(
            log=log,
            clock_ms=clock,
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


def profile_cart(state: CartState | None, at_ms: int) -> tuple[dict[str, Any], int]:
    """The cart as the person's profile shows it, and the event time it is as of: every op that arrived (pending
    ones too), or an empty cart at ``at_ms`` (the purchase's time) once the state is gone."""
    if state is None:
        return {"cart_id": None, "currency": "", "value": 0.0, "items": []}, at_ms
    cart = {
        "cart_id": state.cart_id,
        "currency": state.currency,
        "value": state.value,
        "items": [item.to_dict() for item in state.items.values()],
    }
    return cart, max(state.newest_change_ms, at_ms)


def apply_event(
    state: CartState | None, event: ClickEvent, policy: CartPolicy, *, watermark_ms: int = NO_WATERMARK
) -> CartDecision:
    """Put one event into the person's cart log, at its event-time place whatever order the events arrive in.

    The op waits in the log until the series reaches its time, so it changes only reminders due after it.
    The input state is never mutated. Duplicates and non-cart events return it as is.

    :param watermark_ms: the operator's current watermark: the series is decided up to it. The caller must have
        diverted events at or before it (late) already. Default: no watermark yet.
    :raises InvalidEvent: a cart event whose properties cannot describe a cart (e.g. ``properties.price``).
    """
    if state is not None and (event.message_id in state.recent_message_ids or state.log.has_message(event.message_id)):
        return CartDecision(state)
    if event.type != "track" or event.name not in _KINDS:
        return CartDecision(state)

    op = _op_from(event)  # validate before looking at state, so a bad event is rejected whatever came before it
    new = _copy(state) if state is not None else CartState()
    _remember(new, event.message_id, policy.dedup_window)
    if op is None:
        return CartDecision(new if state is not None else None)  # a snapshot event without products

    new.log = new.log.apply(op)
    if len(new.log.ops) > MAX_PENDING_OPS:  # a bot: decide the oldest pending ops now rather than grow
        watermark_ms = max(watermark_ms, new.log.ops[len(new.log.ops) - MAX_PENDING_OPS - 1].effective_ms)
    decision = _decide(new, person_id=event.person_id, until_ms=watermark_ms, policy=policy)
    before = state.log.latest if state is not None else Cart()
    after = decision.state.log.latest if decision.state is not None else Cart()
    return replace(decision, cart_changed=_cart_view(after) != _cart_view(before))


def fire_timer(
    state: CartState | None, person_id: str, timer_ms: int, policy: CartPolicy, *, watermark_ms: int = NO_WATERMARK
) -> CartDecision:
    """Handle the person's event-time timer: send the reminders now due, or drop state whose hold has passed.

    A timer that no longer matches ``state.next_reminder_ms`` was superseded by a cart op and is ignored.

    :param watermark_ms: the operator's current watermark; the series is decided up to it (at least the timer).
    """
    if state is None or timer_ms != state.next_reminder_ms:
        return CartDecision(state)
    return _decide(_copy(state), person_id=person_id, until_ms=max(timer_ms, watermark_ms), policy=policy)


@dataclass(slots=True)
class _Series:
    """The series as the walk through event time has it: the cart then, and where the reminders stand."""

    cart: Cart
    last_change_ms: int | None
    sent: int
    last_trigger_ms: int | None

    def due_ms(self, policy: CartPolicy) -> int | None:
        """When the next reminder is owed if nothing changes the cart first; ``None`` when none is."""
        if not self.cart.items or self.last_change_ms is None or self.sent >= policy.series_length:
            return None
        due = self.last_change_ms + policy.reminders[self.sent].delay_ms
        if self.sent == 0 and self.last_trigger_ms is not None:
            due = max(due, self.last_trigger_ms + policy.cooldown_ms)
        return due

    def hold_ms(self, policy: CartPolicy) -> int | None:
        """With no reminder owed: just after the latest time the state must remember (the newest op, the end of
        the cooldown); then the cart is forgotten. ``None`` for a state with nothing to remember."""
        if self.last_change_ms is None and self.last_trigger_ms is None:
            return None
        latest = self.last_change_ms or 0
        if self.last_trigger_ms is not None:
            latest = max(latest, self.last_trigger_ms + policy.cooldown_ms)
        return latest + 1

    def change(self, unit: list[CartOp]) -> None:
        """A cart op at its time: it changes the cart and starts the series again (debounce)."""
        self.cart.apply(unit)
        self.last_change_ms = unit[0].effective_ms
        self.sent = 0

    def fire(self, due_ms: int, person_id: str, policy: CartPolicy) -> AbandonmentTrigger:
        index = self.sent + 1
        trigger = AbandonmentTrigger(
            trigger_id=make_trigger_id(person_id, self.cart.cart_id, self.last_change_ms or 0, index),
            person_id=person_id,
            cart_id=self.cart.cart_id,
            reminder_index=index,
            template=policy.reminders[self.sent].template,
            fired_at_ms=due_ms,
            last_change_ms=self.last_change_ms or 0,
            currency=self.cart.currency,
            value=_value(self.cart.items.values()),
            items=tuple(sorted(self.cart.items.values(), key=_product_id)),  # byte-identical on any arrival order
        )
        self.last_trigger_ms = due_ms
        # Skip reminders that the cooldown already pushed us past, rather than sending them back to back.
        while index < policy.series_length and (self.last_change_ms or 0) + policy.reminders[index].delay_ms <= due_ms:
            index += 1
        self.sent = index
        return trigger

    def run_until(self, moment_ms: int, person_id: str, policy: CartPolicy, fired: list[AbandonmentTrigger]) -> None:
        """Let event time pass up to (excluding) ``moment_ms``: fire what falls due, forget a held cart."""
        while (due := self.due_ms(policy)) is not None and due < moment_ms:
            fired.append(self.fire(due, person_id, policy))
        hold = self.hold_ms(policy) if due is None else None
        if hold is not None and hold < moment_ms:
            self.cart, self.last_change_ms, self.sent, self.last_trigger_ms = Cart(), None, 0, None


def _decide(state: CartState, *, person_id: str, until_ms: int, policy: CartPolicy) -> CartDecision:
    """Walk the series through event time up to ``until_ms`` (mutating ``state``), then arm the next timer.

    The walk takes the pending ops and the due reminders in event-time order: an op at a reminder's due time
    comes first (a reminder at D is judged on the ops at or before D). Ops after ``until_ms`` stay pending.
    """
    series = _Series(state.log.base.copy(), state.last_change_ms, state.reminders_sent, state.last_trigger_ms)
    fired: list[AbandonmentTrigger] = []
    if until_ms > state.clock_ms:
        for unit in op_units(state.log.ops):
            if unit[0].effective_ms > until_ms:
                break
            series.run_until(unit[0].effective_ms, person_id, policy, fired)
            series.change(unit)
        series.run_until(until_ms + 1, person_id, policy, fired)
        state.log = state.log.folded_until(until_ms, base=series.cart)
        state.clock_ms = until_ms
        state.last_change_ms, state.reminders_sent = series.last_change_ms, series.sent
        state.last_trigger_ms = series.last_trigger_ms
    state.next_reminder_ms = _next_timer(series, state.log.ops, policy)
    if state.next_reminder_ms is None and not state.log.ops:
        return CartDecision(None, tuple(fired))
    return CartDecision(state, tuple(fired))


def _next_timer(series: _Series, pending: tuple[CartOp, ...], policy: CartPolicy) -> int | None:
    """The first reminder the pending ops leave due, else when the state may go; ``None``: nothing to wait for."""
    ahead = _Series(series.cart.copy(), series.last_change_ms, series.sent, series.last_trigger_ms)
    for unit in op_units(pending):
        due = ahead.due_ms(policy)
        if due is not None and due < unit[0].effective_ms:
            return due
        ahead.run_until(unit[0].effective_ms, "", policy, [])
        ahead.change(unit)
    due = ahead.due_ms(policy)
    return due if due is not None else ahead.hold_ms(policy)


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
    cart_id = usable_id(props.get("cart_id"))
    currency = usable_currency(props.get("currency"))  # a bad one is marked by the collector and left out here
    if kind is OpKind.SNAPSHOT and snapshot is None:
        return None
    merged_at, source = (None, "") if event.merged is None else event.merged
    return CartOp(
        kind, event.event_time_ms, event.message_id, items, product_id, quantity, cart_id, currency, merged_at, source
    )


def _cart_view(cart: Cart) -> tuple[Mapping[str, CartItem], str, str | None]:
    """What the profile shows of the cart; a step changed the cart exactly when this changed."""
    return cart.items, cart.currency, cart.cart_id


def _value(items: Iterable[CartItem]) -> float:
    """Cart total, rounded to cents."""
    return round(sum(item.price * item.quantity for item in items), 2)


def _product_id(item: CartItem) -> str:
    return item.product_id


def _copy(state: CartState) -> CartState:
    return replace(state, recent_message_ids=list(state.recent_message_ids))


def _remember(state: CartState, message_id: str, window: int) -> None:
    ids = state.recent_message_ids
    ids.append(message_id)
    if len(ids) > window:
        del ids[: len(ids) - window]
