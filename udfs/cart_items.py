"""Cart lines from an event's ``properties`` (Segment's e-commerce spec), using what the cart can use.

The collector accepts events whose properties deviate from the spec, as Segment does, and marks how
(``context.cartpulse.spec_deviations``, collector/ecommerce.py); the rules here are the same, so a marked value
is one the cart does without:

- a line's id is ``product_id``, else ``sku`` (a non-blank string, or an integer); a line with neither cannot
  be in the cart, so the event is dead-lettered (:class:`~udfs.events.InvalidEvent`, naming the field), as is a
  ``products`` that is not an array of objects: a snapshot the cart cannot read must not empty it;
- a price that is absent or unusable (not a number, < 0, not finite) is unknown: the line is in the cart, adds
  nothing to its value, and its email shows no price (``"price": null`` in the line's dict);
- a quantity that is absent or unusable (not a whole number >= 1) is 1 in a line, and in a removal removes the
  whole line, as an absent one does;
- ``name``, ``image_url``, ``url`` and ``cart_id`` that are not usable are absent, and so is a ``currency``
  that is not a three-letter code (:func:`usable_currency`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from udfs.events import InvalidEvent

__all__ = [
    "CartItem",
    "is_int",
    "item_from",
    "removal_from",
    "snapshot_items",
    "usable_currency",
    "usable_id",
    "usable_price",
    "usable_quantity",
    "usable_text",
]


@dataclass(frozen=True, slots=True)
class CartItem:
    """One line of the cart; ``price`` is per unit.

    :param price_known: ``False`` when the event carried no usable price; ``price`` is then 0.0, so the line
        adds nothing to the cart's value, and :meth:`to_dict` writes ``"price": null`` so that nothing
        downstream mistakes it for free.
    """

    product_id: str
    name: str
    price: float
    quantity: int
    image_url: str | None = None
    url: str | None = None
    price_known: bool = True

    def __post_init__(self) -> None:
        if not self.price_known and self.price != 0.0:
            raise ValueError("a CartItem with an unknown price has price 0.0")

    def to_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "name": self.name,
            "price": self.price if self.price_known else None,
            "quantity": self.quantity,
            "image_url": self.image_url,
            "url": self.url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CartItem:
        price = data["price"]
        return cls(
            product_id=data["product_id"],
            name=data.get("name", ""),
            price=float(price) if price is not None else 0.0,
            quantity=int(data["quantity"]),
            image_url=data.get("image_url"),
            url=data.get("url"),
            price_known=price is not None,
        )


def snapshot_items(products: Any) -> dict[str, CartItem] | None:
    """The ``products`` array of a snapshot event as cart lines; repeated product ids add up.

    :raises InvalidEvent: ``products`` is not an array of objects, or a line has no usable id.
    """
    if products is None:
        return None
    if not isinstance(products, list):
        raise InvalidEvent.expected("properties.products", "an array", products)
    items: dict[str, CartItem] = {}
    for position, product in enumerate(products):
        prefix = f"properties.products[{position}]."
        if not isinstance(product, Mapping):
            raise InvalidEvent.expected(prefix[:-1], "an object", product)
        item = item_from(product, prefix)
        existing = items.get(item.product_id)
        items[item.product_id] = item if existing is None else replace(item, quantity=existing.quantity + item.quantity)
    return items


def item_from(props: Mapping[str, Any], prefix: str) -> CartItem:
    """A cart line; only a missing id is an error (see the module docstring for the rest).

    :param prefix: where ``props`` sit in the event, for the error: ``"properties."``.
    :raises InvalidEvent: naming ``{prefix}product_id`` when there is no usable ``product_id`` or ``sku``.
    """
    price = usable_price(props.get("price"))
    return CartItem(
        product_id=_product_id(props, prefix),
        name=usable_text(props.get("name")) or "",
        price=price if price is not None else 0.0,
        quantity=usable_quantity(props.get("quantity")) or 1,
        image_url=usable_text(props.get("image_url")),
        url=usable_text(props.get("url")),
        price_known=price is not None,
    )


def removal_from(props: Mapping[str, Any]) -> tuple[str, int | None]:
    """The line to reduce and by how much; ``None`` (absent or unusable) removes the whole line."""
    return _product_id(props, "properties."), usable_quantity(props.get("quantity"))


def _product_id(props: Mapping[str, Any], prefix: str) -> str:
    """``product_id``, else ``sku``; integers are accepted because many shops number their products."""
    for key in ("product_id", "sku"):
        value = usable_id(props.get(key))
        if value is not None:
            return value
    raise InvalidEvent(f"{prefix}product_id", "missing or unusable, and no usable sku: the cart cannot hold the line")


def usable_price(value: Any) -> float | None:
    """A finite number >= 0, else ``None`` (unknown)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def usable_quantity(value: Any) -> int | None:
    """A whole number >= 1, else ``None``; ``2.0`` counts (JSON producers send floats)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return int(value) if is_int(value) and value >= 1 else None


def usable_text(value: Any) -> str | None:
    """A non-empty string, else ``None``."""
    return value if isinstance(value, str) and value else None


def usable_id(value: Any) -> str | None:
    """A non-blank string, or an integer as a string, else ``None``."""
    if is_int(value):
        return str(value)
    text = usable_text(value)
    return None if text is None or text.isspace() else text


def usable_currency(value: Any) -> str | None:
    """Three ASCII letters (an ISO 4217 code, as the email needs), else ``None``."""
    text = usable_text(value)
    return text if text is not None and len(text) == 3 and text.isascii() and text.isalpha() else None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
