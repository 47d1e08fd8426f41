"""Segment's E-commerce spec as schemas: the ``properties`` of the cart and order events are checked here.

Only the events the pipeline acts on are checked (``Product Viewed``, ``Product Added``, ``Product Removed``,
``Cart Viewed``, ``Checkout Started``, ``Order Completed``); any other track event passes as a generic event.
The rules match what the cart job needs (udfs/cart_items.py), so an event that passes here is not
dead-lettered there for its properties: a product needs ``product_id`` (or ``sku``); a cart line needs a
``price``; prices and amounts are finite numbers >= 0; ``quantity`` is a positive whole number; ids are
strings or integers; ``currency`` is a three-letter ISO 4217 code. Unknown properties are allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from collector.errors import Reason, Rejected

__all__ = ["ECOMMERCE_EVENTS", "check_properties"]


def _identifier(value: Any) -> str | int:
    """Ids are strings or integers (many shops number their products), never booleans, floats or blanks."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("must be a string or an integer")
    if isinstance(value, str) and (not value or value.isspace()):
        raise ValueError("must not be blank")
    return value


_Id = Annotated[str | int, PlainValidator(_identifier)]
_Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Currency = Annotated[StrictStr, Field(pattern=r"^[A-Za-z]{3}$")]


def _whole(value: Any) -> Any:
    """JSON producers often send ``2.0`` for 2; the job accepts it, so the schema does too."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_Quantity = Annotated[StrictInt, BeforeValidator(_whole), Field(ge=1)]


class _MissingField(ValueError):
    """Raised inside a model validator; carries the field so the error names it, not the model."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


class _Spec(BaseModel):
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

    @model_validator(mode="after")
    def _identified(self) -> _Product:
        if self.product_id is None and self.sku is None:
            raise _MissingField("product_id", "missing (and no sku to fall back on)")
        return self


class _CartLine(_Product):
    price: _Amount


class _ProductAdded(_CartLine):
    pass


class _Order(_Spec):
    order_id: _Id | None = None
    cart_id: _Id | None = None
    currency: _Currency | None = None
    coupon: StrictStr | None = None
    value: _Amount | None = None
    revenue: _Amount | None = None
    total: _Amount | None = None
    subtotal: _Amount | None = None
    shipping: _Amount | None = None
    tax: _Amount | None = None
    discount: _Amount | None = None


class _CartViewed(_Spec):
    cart_id: _Id | None = None
    currency: _Currency | None = None
    products: list[_CartLine] | None = None


class _CheckoutStarted(_Order):
    products: list[_CartLine] | None = None


class _OrderCompleted(_Order):
    order_id: _Id
    products: list[_Product] | None = None


_SCHEMAS: dict[str, type[_Spec]] = {
    "Product Viewed": _Product,
    "Product Added": _ProductAdded,
    "Product Removed": _Product,
    "Cart Viewed": _CartViewed,
    "Checkout Started": _CheckoutStarted,
    "Order Completed": _OrderCompleted,
}

#: Track event names whose properties are checked against Segment's E-commerce spec.
ECOMMERCE_EVENTS: frozenset[str] = frozenset(_SCHEMAS)


def check_properties(event_name: str, properties: Mapping[str, Any]) -> None:
    """Check the properties of an E-commerce event; other event names are not checked.

    :raises Rejected: naming the first bad property, e.g. ``properties.products[2].price``.
    """
    schema = _SCHEMAS.get(event_name)
    if schema is None:
        return
    try:
        schema.model_validate(properties)
    except ValidationError as exc:
        raise _rejection(event_name, exc) from None


def _rejection(event_name: str, exc: ValidationError) -> Rejected:
    error = exc.errors(include_url=False)[0]
    field = _path(error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, _MissingField):
        return Rejected(Reason.ECOMMERCE_SCHEMA, f"{field}.{cause.field}", str(cause))
    if error["type"] == "missing":
        return Rejected(Reason.ECOMMERCE_SCHEMA, field, f"missing; {event_name!r} needs it")
    return Rejected(Reason.ECOMMERCE_SCHEMA, field, f"{_message(error)}, got {_describe(error.get('input'))}")


def _path(loc: tuple[int | str, ...]) -> str:
    """``('products', 2, 'price')`` → ``properties.products[2].price``, the form the job's errors use."""
    text = "properties"
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "value_error":
        return str((error.get("ctx") or {}).get("error") or error["msg"])
    if kind == "greater_than_equal":
        return f"must be >= {error.get('ctx', {}).get('ge', 0):g}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "string_pattern_mismatch":
        return "must be a three-letter ISO 4217 code"
    if kind in ("int_type", "int_from_float"):
        return "must be a whole number"
    if kind == "float_type":
        return "must be a number"
    if kind == "string_type":
        return "must be a string"
    if kind == "list_type":
        return "must be an array"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be an object"
    return str(error["msg"]).replace("Input should be", "must be")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        text = repr(value)
        return f"string {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__
