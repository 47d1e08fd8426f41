"""Segment's E-commerce spec: what the properties of the cart and order events deviate from it, never a refusal.

Segment answers 200 to an event whose properties deviate from its E-commerce spec (the spec recommends
properties; it does not refuse events), and its SDKs do not resend a refused call, so refusing one would lose
it: an ``Order Completed`` without ``order_id`` refused here is a purchase the cart job never sees. So the
collector accepts such events, and :func:`spec_deviations` lists how they deviate, for the handler to count
and to mark on the record (``context.cartpulse.spec_deviations``, :mod:`collector.schema`).

Only the events the pipeline acts on are looked at (``Product Viewed``, ``Product Added``, ``Product
Removed``, ``Cart Viewed``, ``Checkout Started``, ``Order Completed``); any other track event is generic. A
deviation is one :class:`Deviation`: the field (``properties.products[2].price``) and a reason of
:class:`DeviationReason`:

- ``missing``: absent or ``null`` where the spec expects it: a product's ``product_id`` (``sku`` stands in for
  it), a cart line's ``price`` and ``quantity`` (``Product Added`` and each ``products[]`` entry of ``Cart
  Viewed``/``Checkout Started``), an order's ``order_id``;
- ``wrong_type``: a value of the wrong JSON type (a price ``"9.99"``, an id ``true``, ``products`` an object);
- ``invalid_value``: the right type but unusable (a price < 0 or not finite, a quantity < 1 or fractional, a
  blank id, a currency that is not three letters).

Unknown properties are not looked at. The cart job reads the same rules (udfs/cart_items.py): a value marked
here is one it does not use (an unknown price, a quantity of 1, no id: the line is dead-lettered there).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, StrictStr, ValidationError
from pydantic_core import PydanticCustomError

__all__ = ["ECOMMERCE_EVENTS", "Deviation", "DeviationReason", "spec_deviations"]


class DeviationReason(StrEnum):
    """How a property deviates; the ``reason`` label of the deviations metric (a small, fixed set)."""

    MISSING = "missing"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"


@dataclass(frozen=True, slots=True)
class Deviation:
    """One way an event deviates from the spec.

    :param field: dotted path, as the job's errors name fields: ``properties.products[2].price``.
    """

    field: str
    reason: DeviationReason

    @property
    def metric_field(self) -> str:
        """The field with its indexes dropped (``properties.products[].price``): a bounded metric label."""
        return _INDEX.sub("[]", self.field)

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": str(self.reason)}


_INDEX = re.compile(r"\[\d+\]")


def _wrong_type(expected: str) -> PydanticCustomError:
    return PydanticCustomError(DeviationReason.WRONG_TYPE.value, "must be {expected}", {"expected": expected})


def _invalid(expected: str) -> PydanticCustomError:
    return PydanticCustomError(DeviationReason.INVALID_VALUE.value, "must be {expected}", {"expected": expected})


def _identifier(value: Any) -> str | int:
    """Ids are strings or integers (many shops number their products), never booleans, floats or blanks."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _wrong_type("a string or an integer")
    if isinstance(value, str) and (not value or value.isspace()):
        raise _invalid("a non-blank string")
    return value


def _amount(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _wrong_type("a number")
    if not math.isfinite(value) or value < 0:
        raise _invalid("a finite number >= 0")
    return float(value)


def _quantity(value: Any) -> int:
    """JSON producers often send ``2.0`` for 2; the job accepts it, so it is no deviation."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _wrong_type("a whole number")
    if (isinstance(value, float) and not value.is_integer()) or value < 1:
        raise _invalid("a whole number >= 1")
    return int(value)


def _currency(value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong_type("a string")
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        raise _invalid("a three-letter ISO 4217 code")
    return value


_Id = Annotated[str | int, PlainValidator(_identifier)]
_Amount = Annotated[float, PlainValidator(_amount)]
_Quantity = Annotated[int, PlainValidator(_quantity)]
_Currency = Annotated[str, PlainValidator(_currency)]


class _Spec(BaseModel):
    """Types only: every property is optional here; what is expected is :data:`_EXPECTED`."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class _Product(_Spec):
    product_id: _Id | None = None
    sku: _Id | None = None
    name: StrictStr | None = None
    price: _Amount | None = None
    quantity: _Quantity | None = None
    category: StrictStr | None = None
    brand: StrictStr | None = None
    variant: StrictStr | None = None
    coupon: StrictStr | None = None
    url: StrictStr | None = None
    image_url: StrictStr | None = None
    currency: _Currency | None = None
    cart_id: _Id | None = None


class _Cart(_Spec):
    cart_id: _Id | None = None
    currency: _Currency | None = None
    products: list[_Product] | None = None


class _Order(_Cart):
    order_id: _Id | None = None
    coupon: StrictStr | None = None
    value: _Amount | None = None
    revenue: _Amount | None = None
    total: _Amount | None = None
    subtotal: _Amount | None = None
    shipping: _Amount | None = None
    tax: _Amount | None = None
    discount: _Amount | None = None


_SCHEMAS: dict[str, type[_Spec]] = {
    "Product Viewed": _Product,
    "Product Added": _Product,
    "Product Removed": _Product,
    "Cart Viewed": _Cart,
    "Checkout Started": _Order,
    "Order Completed": _Order,
}

_ID = "product_id"  # stands for "product_id, or else sku"
_LINE = (_ID, "price", "quantity")
#: Per event, the properties expected of the event itself and of each ``products[]`` entry. A Product Removed
#: without ``quantity`` removes the whole line, so only its id is expected; an order's lines are not used.
_EXPECTED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Product Viewed": ((_ID,), ()),
    "Product Added": (_LINE, ()),
    "Product Removed": ((_ID,), ()),
    "Cart Viewed": ((), _LINE),
    "Checkout Started": ((), _LINE),
    "Order Completed": (("order_id",), (_ID,)),
}

#: Track event names whose properties are compared with Segment's E-commerce spec.
ECOMMERCE_EVENTS: frozenset[str] = frozenset(_SCHEMAS)


def spec_deviations(event_name: str, properties: Mapping[str, Any]) -> tuple[Deviation, ...]:
    """Every way the properties of an E-commerce event deviate from the spec; ``()`` for other events.

    Wrongly typed or unusable values come first, in the order of the fields, then the missing ones.
    """
    schema = _SCHEMAS.get(event_name)
    if schema is None:
        return ()
    own, per_line = _EXPECTED[event_name]
    return (*_type_deviations(schema, properties), *_missing(properties, own, per_line))


def _type_deviations(schema: type[_Spec], properties: Mapping[str, Any]) -> Iterator[Deviation]:
    try:
        schema.model_validate(properties)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            # Our validators name their error after the reason; pydantic's own (a string, a list) are types.
            invalid = error["type"] == DeviationReason.INVALID_VALUE.value
            reason = DeviationReason.INVALID_VALUE if invalid else DeviationReason.WRONG_TYPE
            yield Deviation(_path(error["loc"]), reason)


def _missing(properties: Mapping[str, Any], own: tuple[str, ...], per_line: tuple[str, ...]) -> Iterator[Deviation]:
    yield from _absent(properties, own, "properties")
    products = properties.get("products")
    if per_line and isinstance(products, list):
        for position, product in enumerate(products):
            if isinstance(product, Mapping):
                yield from _absent(product, per_line, f"properties.products[{position}]")


def _absent(doc: Mapping[str, Any], names: tuple[str, ...], prefix: str) -> Iterator[Deviation]:
    """``null`` counts as absent, as the job reads it."""
    for name in names:
        absent = doc.get(name) is None and (name != _ID or doc.get("sku") is None)
        if absent:
            yield Deviation(f"{prefix}.{name}", DeviationReason.MISSING)


def _path(loc: tuple[int | str, ...]) -> str:
    """``('products', 2, 'price')`` → ``properties.products[2].price``, the form the job's errors use."""
    text = "properties"
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text
