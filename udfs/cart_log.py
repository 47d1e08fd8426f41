"""The cart as a fold over an event-time-sorted log of cart ops, readable as of any event time.

A :class:`CartLog` holds a *base* (the cart as of ``base_key``) and every op newer than it, sorted by
:attr:`CartOp.key`. The cart is ``fold(base, ops)``; an op that arrives out of order is inserted at its place
and the fold is redone, which is what processing the events in event-time order would have given. Resets
(a snapshot, i.e. ``Cart Viewed``/``Checkout Started`` with ``products``, an order, a transfer) stay in the
log like any other op until the base passes them, because the reminder series must be able to ask what the
cart held *at* a due time (:meth:`CartLog.cart_until`), and an op after that time must not change the answer.

``cart_id`` and ``currency`` are written in the same fold: adds and snapshots write the values they carry,
an order or a transfer clears ``cart_id``.

Ops moved from an anonymous cart at login (:mod:`udfs.identity`) carry ``merged_at_ms`` and their ``source``
(the browser): they take effect at the login, as one *group*: the browser's ops are folded on their own, in
their own event-time order, and the resulting lines are added to the cart at ``merged_at_ms``.

A ``TRANSFER`` (the browser's cart moved to the person it logged in as) empties the cart and *closes* it:
every op at or after its time belongs to that person now, so the log drops them.

The log stays bounded because the caller folds into the base everything its reminder series has decided
(:meth:`CartLog.folded_until`), which with the Flink adapter is everything behind the watermark.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from udfs.cart_items import CartItem

__all__ = ["DEFAULT_CURRENCY", "MAX_PENDING_OPS", "Cart", "CartLog", "CartOp", "OpKey", "OpKind", "op_units"]

#: Where an op sits in event time: ``(effective_ms, source, event_time_ms, message_id)``. An op's own ops have
#: ``source == ""``; a moved group sorts after them at the login's time, in the browser's own order.
OpKey = tuple[int, str, int, str]

DEFAULT_CURRENCY = "USD"
#: Hard cap on ops kept unfolded (about 200 bytes each in the stored JSON, so ~50 KB per person at most).
MAX_PENDING_OPS = 256


class OpKind(StrEnum):
    """What a cart op does; ``SNAPSHOT``, ``ORDER`` and ``TRANSFER`` replace the whole cart."""

    ADD = "add"
    REMOVE = "remove"
    SNAPSHOT = "snapshot"
    ORDER = "order"
    TRANSFER = "transfer"


@dataclass(frozen=True, slots=True)
class CartOp:
    """One cart event, reduced to its effect on the cart.

    :param items: ``ADD``: the line(s) added; ``SNAPSHOT``: the whole cart; empty otherwise.
    :param product_id: ``REMOVE``: the line to reduce.
    :param quantity: ``REMOVE``: how many to take off; ``None`` removes the whole line.
    :param cart_id: written to ``cart_id`` by ``ADD`` and ``SNAPSHOT`` when not ``None``.
    :param currency: written to ``currency`` by ``ADD`` and ``SNAPSHOT`` when not ``None``.
    :param merged_at_ms: set on ops moved from a browser's cart at login: when they join this cart.
    :param source: the browser such a moved op comes from; ``""`` for the cart's own ops.
    """

    kind: OpKind
    event_time_ms: int
    message_id: str
    items: tuple[CartItem, ...] = ()
    product_id: str | None = None
    quantity: int | None = None
    cart_id: str | None = None
    currency: str | None = None
    merged_at_ms: int | None = None
    source: str = ""

    @property
    def effective_ms(self) -> int:
        """When the op changes this cart: its own time, or the login's for a moved op."""
        return self.event_time_ms if self.merged_at_ms is None else self.merged_at_ms

    @property
    def key(self) -> OpKey:
        return (self.effective_ms, self.source, self.event_time_ms, self.message_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; fields at their default are left out to keep the stored state small."""
        data: dict[str, Any] = {"kind": self.kind.value, "t": self.event_time_ms, "id": self.message_id}
        if self.items:
            data["items"] = [item.to_dict() for item in self.items]
        optional = {"product_id": self.product_id, "quantity": self.quantity, "merged_at": self.merged_at_ms}
        optional |= {"cart_id": self.cart_id, "currency": self.currency, "source": self.source or None}
        data.update((name, value) for name, value in optional.items() if value is not None)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CartOp:
        return cls(
            kind=OpKind(data["kind"]),
            event_time_ms=int(data["t"]),
            message_id=data["id"],
            items=tuple(CartItem.from_dict(item) for item in data.get("items", ())),
            product_id=data.get("product_id"),
            quantity=data.get("quantity"),
            cart_id=data.get("cart_id"),
            currency=data.get("currency"),
            merged_at_ms=data.get("merged_at"),
            source=data.get("source") or "",
        )


@dataclass(slots=True)
class Cart:
    """A cart at one moment of the fold; mutable, owned by whoever folds.

    :param closed: a transfer happened: the cart moved to another person and takes no more ops.
    :param currency_written: some op named the currency (a moved group only passes on a currency it saw).
    """

    items: dict[str, CartItem] = field(default_factory=dict)
    cart_id: str | None = None
    currency: str = DEFAULT_CURRENCY
    closed: bool = False
    currency_written: bool = field(default=False, compare=False)

    def copy(self) -> Cart:
        return Cart(dict(self.items), self.cart_id, self.currency, self.closed, self.currency_written)

    def apply(self, unit: list[CartOp]) -> None:
        """Fold one unit (an own op, or a moved group: see :func:`op_units`) into the cart."""
        if self.closed:
            return
        if unit[0].source == "":
            _fold_op(self, unit[0])
            return
        moved = Cart()
        for op in unit:
            _fold_op(moved, op)
        for line in moved.items.values():
            _add(self.items, line)
        if moved.cart_id is not None:
            self.cart_id = moved.cart_id
        if moved.currency_written:
            self.currency, self.currency_written = moved.currency, True


@dataclass(frozen=True, slots=True)
class CartLog:
    """Base plus the ops after it; immutable, so steps can share it.

    :param base: the cart as of ``base_key`` (treat as read-only; :meth:`cart_until` copies it).
    :param base_key: the newest op already folded into the base; ``None`` is "before everything".
    :param ops: every op newer than ``base_key``, sorted by key.
    """

    base: Cart = field(default_factory=Cart)
    base_key: OpKey | None = None
    ops: tuple[CartOp, ...] = ()
    _latest: Cart | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def latest(self) -> Cart:
        """The fold of everything, what the profile shows; folded on first use only, since a step builds several
        logs on its way and reads this of one; treat it as read-only."""
        if self._latest is None:
            object.__setattr__(self, "_latest", self.cart_until(None))
        assert self._latest is not None
        return self._latest

    @property
    def items(self) -> dict[str, CartItem]:
        return self.latest.items

    @property
    def cart_id(self) -> str | None:
        return self.latest.cart_id

    @property
    def currency(self) -> str:
        return self.latest.currency

    @property
    def newest_ms(self) -> int | None:
        """Effective time of the newest op not yet in the base."""
        return self.ops[-1].effective_ms if self.ops else None

    def has_message(self, message_id: str) -> bool:
        """Whether a pending op came from this message, so its duplicate can be dropped."""
        return any(op.message_id == message_id for op in self.ops)

    def cart_until(self, until_ms: int | None) -> Cart:
        """The cart with every op effective at or before ``until_ms`` (all of them for ``None``)."""
        cart = self.base.copy()
        for unit in op_units(self.ops):
            if until_ms is not None and unit[0].effective_ms > until_ms:
                break
            cart.apply(unit)
        return cart

    def apply(self, op: CartOp) -> CartLog:
        """The log with ``op`` in its place; an op at or below the base, or after a transfer, is dropped."""
        if self.base.closed or (self.base_key is not None and op.key <= self.base_key):
            return self
        transfer = next((pending for pending in self.ops if pending.kind is OpKind.TRANSFER), None)
        if transfer is not None and op.effective_ms >= transfer.effective_ms:
            return self
        pending = list(self.ops)
        if op.kind is OpKind.TRANSFER:
            pending = [kept for kept in pending if kept.effective_ms < op.effective_ms]
        bisect.insort(pending, op, key=_op_key)
        return CartLog(self.base, self.base_key, tuple(pending))

    def folded_until(self, until_ms: int, base: Cart | None = None) -> CartLog:
        """The same log with every op effective at or before ``until_ms`` folded into the base.

        :param base: the cart those ops give, when the caller has folded them already (the series' walk, which
            may also have forgotten the cart); by default they are folded here.
        """
        count = bisect.bisect_right(self.ops, until_ms, key=_op_effective)
        if count == 0 and base is None:
            return self
        base_key = self.ops[count - 1].key if count else self.base_key
        return CartLog(self.cart_until(until_ms) if base is None else base, base_key, self.ops[count:])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (keys become lists); the folded carts are derived, so not stored."""
        return {
            "base_items": [item.to_dict() for item in self.base.items.values()],
            "base_key": None if self.base_key is None else list(self.base_key),
            "ops": [op.to_dict() for op in self.ops],
            "cart_id": self.base.cart_id,
            "currency": self.base.currency,
            "closed": self.base.closed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CartLog:
        """Inverse of :meth:`to_dict`; missing keys take their defaults. A two-part base key (the log's layout
        before moved ops) reads as an own op's key."""
        items = (CartItem.from_dict(item) for item in data.get("base_items", ()))
        currency = data.get("currency", DEFAULT_CURRENCY)
        base = Cart({item.product_id: item for item in items}, data.get("cart_id"), currency, data.get("closed", False))
        return cls(
            base=base,
            base_key=_key_from_json(data.get("base_key")),
            ops=tuple(sorted((CartOp.from_dict(op) for op in data.get("ops", ())), key=_op_key)),
        )


def op_units(ops: Iterable[CartOp]) -> Iterator[list[CartOp]]:
    """Sorted ops as the fold takes them: each own op alone, a moved group (same login, same browser) together."""
    unit: list[CartOp] = []
    for op in ops:
        if unit and (op.source == "" or (op.effective_ms, op.source) != (unit[0].effective_ms, unit[0].source)):
            yield unit
            unit = []
        unit.append(op)
    if unit:
        yield unit


def _fold_op(cart: Cart, op: CartOp) -> None:
    if cart.closed:
        return
    if op.kind is OpKind.ADD:
        for added in op.items:
            _add(cart.items, added)
    elif op.kind is OpKind.REMOVE:
        if op.product_id is not None:
            _remove(cart.items, op.product_id, op.quantity)
        return  # removals write neither cart_id nor currency
    elif op.kind is OpKind.SNAPSHOT:
        cart.items = {item.product_id: item for item in op.items}
    else:  # ORDER or TRANSFER
        cart.items = {}
        cart.cart_id = None
        cart.closed = op.kind is OpKind.TRANSFER
        return
    if op.cart_id is not None:
        cart.cart_id = op.cart_id
    if op.currency is not None:
        cart.currency, cart.currency_written = op.currency, True


def _add(items: dict[str, CartItem], added: CartItem) -> None:
    """Add to an existing line if there is one; the newest (in event time) name, price and links win."""
    existing = items.get(added.product_id)
    if existing is not None:
        added = replace(
            added,
            quantity=existing.quantity + added.quantity,
            name=added.name or existing.name,
            price=added.price if added.price_known else existing.price,
            price_known=added.price_known or existing.price_known,
            image_url=added.image_url or existing.image_url,
            url=added.url or existing.url,
        )
    items[added.product_id] = added


def _remove(items: dict[str, CartItem], product_id: str, quantity: int | None) -> None:
    """Reduce a line by ``quantity``; drop it when ``quantity`` is absent or covers the whole line."""
    line = items.get(product_id)
    if line is None:
        return  # nothing (yet) to remove: if the add turns up later with an older time, the refold applies both
    if quantity is not None and quantity < line.quantity:
        items[product_id] = replace(line, quantity=line.quantity - quantity)
    else:
        del items[product_id]


def _op_key(op: CartOp) -> OpKey:
    return op.key


def _op_effective(op: CartOp) -> int:
    return op.effective_ms


def _key_from_json(value: Any) -> OpKey | None:
    if value is None:
        return None
    if len(value) == 2:
        return (int(value[0]), "", int(value[0]), str(value[1]))
    return (int(value[0]), str(value[1]), int(value[2]), str(value[3]))
