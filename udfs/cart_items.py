"""Cart lines and the checks that turn an event's ``properties`` into them (Segment's e-commerce spec).

Every check names the offending field (``properties.products[2].price``) so a dead-lettered record says
exactly what to fix at the source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from udfs.events import InvalidEvent

__all__ = ["CartItem", "is_int", "item_from", "optional_id", "optional_text", "removal_from", "snapshot_items"]


@dataclass(frozen=True, slots=True)
class CartItem:
    """One line of the cart; ``price`` is per unit."""

    product_id: str
    name: str
    price: float
    quantity: int
    image_url: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "name": self.name,
            "price": self.price,
            "quantity": self.quantity,
            "image_url": self.image_url,
            "url": self.url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CartItem:
        return cls(
            product_id=data["product_id"],
            name=data.get("name", ""),
            price=float(data["price"]),
            quantity=int(data["quantity"]),
            image_url=data.get("image_url"),
            url=data.get("url"),
        )


def snapshot_items(products: Any) -> dict[str, CartItem] | None:
    """The ``products`` array of a snapshot event as cart lines; repeated product ids add up."""
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
    return CartItem(
        product_id=_product_id(props, prefix),
        name=optional_text(props.get("name"), f"{prefix}name") or "",
        price=_price(props.get("price"), f"{prefix}price"),
        quantity=_quantity(props.get("quantity"), f"{prefix}quantity") or 1,
        image_url=optional_text(props.get("image_url"), f"{prefix}image_url"),
        url=optional_text(props.get("url"), f"{prefix}url"),
    )


def removal_from(props: Mapping[str, Any]) -> tuple[str, int | None]:
    return _product_id(props, "properties."), _quantity(props.get("quantity"), "properties.quantity")


def _product_id(props: Mapping[str, Any], prefix: str) -> str:
    """``product_id``, else ``sku``; integers are accepted because many shops number their products."""
    key = "product_id" if props.get("product_id") not in (None, "") else "sku"
    value = optional_id(props.get(key), f"{prefix}{key}")
    if value is None:
        raise InvalidEvent(f"{prefix}product_id", "missing (and no sku to fall back on)")
    return value


def _price(value: Any, field_name: str) -> float:
    if value is None:
        raise InvalidEvent(field_name, "missing")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidEvent.expected(field_name, "a number", value)
    if not math.isfinite(value) or value < 0:
        raise InvalidEvent.expected(field_name, "a finite number >= 0", value)
    return float(value)


def _quantity(value: Any, field_name: str) -> int | None:
    """A positive whole number, or ``None`` if absent; ``2.0`` is accepted (JSON producers send floats)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not is_int(value) or value < 1:
        raise InvalidEvent.expected(field_name, "a positive integer", value)
    return int(value)


def optional_text(value: Any, field_name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidEvent.expected(field_name, "a string", value)
    return value


def optional_id(value: Any, field_name: str) -> str | None:
    if is_int(value):
        return str(value)
    text = optional_text(value, field_name)
    return None if text is None or text.isspace() else text


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
