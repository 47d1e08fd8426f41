"""The cart as a fold over an event-time-sorted log of cart ops, so any arrival order gives the same cart.

A :class:`CartLog` holds a *base* (the cart lines as of ``base_key``) and the add/remove ops newer than it,
sorted by ``(event_time_ms, message_id)``. The cart is ``fold(base, ops)``; an op that arrives out of order is
inserted at its place and the fold is redone, which is exactly what processing the events in event-time order
would have given.

Resets (a snapshot, i.e. ``Cart Viewed``/``Checkout Started`` with ``products``, or ``Order Completed``) replace
the whole cart, so everything older than them no longer matters: a reset newer than the base *becomes* the base,
the ops before it are dropped and the ops after it stay and are re-applied. An op at or below the base key
(older than a reset that already arrived, or already folded in) is ignored, as ordered processing would have
superseded it. So the ops tuple never holds a reset.

``cart_id`` and ``currency`` are last-writer-wins registers keyed by the same ``(event_time_ms, message_id)``, and
they take every op into account, even one ignored for the lines: the newest writer wins, which is what writing
them in event-time order gives. Adds and snapshots write the values they carry; an order writes ``cart_id=None``.

Compaction keeps the log bounded: ops older than the watermark can never be preceded by a new op (the Flink
adapter diverts events behind the watermark), so :meth:`CartLog.compacted` folds them into the base. At most
:data:`MAX_PENDING_OPS` ops stay pending whatever the watermark does; beyond that the oldest are folded in too,
and an op arriving later that is older than them is ignored (only a bot clicks that fast within one
out-of-orderness window).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from udfs.cart_items import CartItem

__all__ = ["DEFAULT_CURRENCY", "MAX_PENDING_OPS", "CartLog", "CartOp", "OpKey", "OpKind"]

#: Where an op sits in event time: ``(event_time_ms, message_id)``; the message id breaks ties deterministically.
OpKey = tuple[int, str]

DEFAULT_CURRENCY = "USD"
#: Hard cap on ops kept unfolded (about 200 bytes each in the stored JSON, so ~50 KB per person at most).
MAX_PENDING_OPS = 256


class OpKind(StrEnum):
    """What a cart op does; ``SNAPSHOT`` and ``ORDER`` are the resets."""

    ADD = "add"
    REMOVE = "remove"
    SNAPSHOT = "snapshot"
    ORDER = "order"


_RESETS = frozenset({OpKind.SNAPSHOT, OpKind.ORDER})
_METADATA_WRITERS = frozenset({OpKind.ADD, OpKind.SNAPSHOT})


@dataclass(frozen=True, slots=True)
class CartOp:
    """One cart event, reduced to its effect on the cart.

    :param items: ``ADD``: the line(s) added; ``SNAPSHOT``: the whole cart; empty otherwise.
    :param product_id: ``REMOVE``: the line to reduce.
    :param quantity: ``REMOVE``: how many to take off; ``None`` removes the whole line.
    :param cart_id: written to the ``cart_id`` register by ``ADD`` and ``SNAPSHOT`` when not ``None``.
    :param currency: written to the ``currency`` register by ``ADD`` and ``SNAPSHOT`` when not ``None``.
    """

    kind: OpKind
    event_time_ms: int
    message_id: str
    items: tuple[CartItem, ...] = ()
    product_id: str | None = None
    quantity: int | None = None
    cart_id: str | None = None
    currency: str | None = None

    @property
    def key(self) -> OpKey:
        return (self.event_time_ms, self.message_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; fields at their default are left out to keep the stored state small."""
        data: dict[str, Any] = {"kind": self.kind.value, "t": self.event_time_ms, "id": self.message_id}
        if self.items:
            data["items"] = [item.to_dict() for item in self.items]
        optional = {"product_id": self.product_id, "quantity": self.quantity}
        optional |= {"cart_id": self.cart_id, "currency": self.currency}
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
        )


@dataclass(frozen=True, slots=True)
class CartLog:
    """Base plus pending ops, and the ``cart_id``/``currency`` registers; immutable, so steps can share it.

    :param base_items: the cart lines as of ``base_key``, in the order the fold put them.
    :param base_key: the newest op already reflected in the base; ``None`` is "before everything".
    :param ops: ``ADD``/``REMOVE`` ops newer than ``base_key``, sorted by key.
    :param cart_id_key: the key of the op that wrote ``cart_id``; ``None`` means any writer wins.
    :param currency_key: the key of the op that wrote ``currency``; ``None`` means any writer wins.
    """

    base_items: tuple[CartItem, ...] = ()
    base_key: OpKey | None = None
    ops: tuple[CartOp, ...] = ()
    cart_id: str | None = None
    cart_id_key: OpKey | None = None
    currency: str = DEFAULT_CURRENCY
    currency_key: OpKey | None = None
    #: ``fold(base_items, ops)``, computed once; treat it as read-only.
    items: dict[str, CartItem] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", _fold(self.base_items, self.ops))

    def has_message(self, message_id: str) -> bool:
        """Whether a pending op came from this message, so its duplicate can be dropped."""
        return any(op.message_id == message_id for op in self.ops)

    def apply(self, op: CartOp) -> CartLog:
        """The log with ``op`` in its event-time place; an op at or below the base only updates the registers."""
        key = op.key
        cart_id, cart_id_key = self.cart_id, self.cart_id_key
        currency, currency_key = self.currency, self.currency_key
        if op.kind is OpKind.ORDER and _newer(key, cart_id_key):
            cart_id, cart_id_key = None, key
        if op.kind in _METADATA_WRITERS and op.cart_id is not None and _newer(key, cart_id_key):
            cart_id, cart_id_key = op.cart_id, key
        if op.kind in _METADATA_WRITERS and op.currency is not None and _newer(key, currency_key):
            currency, currency_key = op.currency, key

        # An op at or below the base is superseded in event-time order; only the registers can learn from it.
        base_items, base_key, ops = self.base_items, self.base_key, self.ops
        newer = _newer(key, base_key)
        if newer and op.kind in _RESETS:
            base_items = op.items if op.kind is OpKind.SNAPSHOT else ()
            base_key = key
            ops = tuple(pending for pending in ops if pending.key > key)
        elif newer:
            pending = list(ops)
            bisect.insort(pending, op, key=_op_key)
            ops = tuple(pending)
        return CartLog(base_items, base_key, ops, cart_id, cart_id_key, currency, currency_key)

    def compacted(self, watermark_ms: int, max_ops: int = MAX_PENDING_OPS) -> CartLog:
        """Fold into the base the ops older than the watermark, and the oldest beyond ``max_ops``; same cart."""
        if max_ops < 0:
            raise ValueError(f"max_ops must be >= 0, got {max_ops}")
        below = bisect.bisect_left(self.ops, watermark_ms, key=_op_time)
        count = max(below, len(self.ops) - max_ops)
        if count <= 0:
            return self
        base = tuple(_fold(self.base_items, self.ops[:count]).values())
        return replace(self, base_items=base, base_key=self.ops[count - 1].key, ops=self.ops[count:])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (keys become ``[ms, id]`` lists); the folded ``items`` are derived, so not stored."""
        return {
            "base_items": [item.to_dict() for item in self.base_items],
            "base_key": _key_to_json(self.base_key),
            "ops": [op.to_dict() for op in self.ops],
            "cart_id": self.cart_id,
            "cart_id_key": _key_to_json(self.cart_id_key),
            "currency": self.currency,
            "currency_key": _key_to_json(self.currency_key),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CartLog:
        """Inverse of :meth:`to_dict`; missing keys take their defaults."""
        return cls(
            base_items=tuple(CartItem.from_dict(item) for item in data.get("base_items", ())),
            base_key=_key_from_json(data.get("base_key")),
            ops=tuple(sorted((CartOp.from_dict(op) for op in data.get("ops", ())), key=_op_key)),
            cart_id=data.get("cart_id"),
            cart_id_key=_key_from_json(data.get("cart_id_key")),
            currency=data.get("currency", DEFAULT_CURRENCY),
            currency_key=_key_from_json(data.get("currency_key")),
        )


def _fold(base_items: Iterable[CartItem], ops: Iterable[CartOp]) -> dict[str, CartItem]:
    items = {item.product_id: item for item in base_items}
    for op in ops:
        if op.kind is OpKind.ADD:
            for added in op.items:
                _add(items, added)
        elif op.kind is OpKind.REMOVE and op.product_id is not None:
            _remove(items, op.product_id, op.quantity)
    return items


def _add(items: dict[str, CartItem], added: CartItem) -> None:
    """Add to an existing line if there is one; the newest (in event time) name, price and links win."""
    existing = items.get(added.product_id)
    if existing is not None:
        added = replace(
            added,
            quantity=existing.quantity + added.quantity,
            name=added.name or existing.name,
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


def _newer(key: OpKey, than: OpKey | None) -> bool:
    return than is None or key > than


def _op_key(op: CartOp) -> OpKey:
    return op.key


def _op_time(op: CartOp) -> int:
    return op.event_time_ms


def _key_to_json(key: OpKey | None) -> list[Any] | None:
    return None if key is None else [key[0], key[1]]


def _key_from_json(value: Any) -> OpKey | None:
    return None if value is None else (int(value[0]), str(value[1]))
