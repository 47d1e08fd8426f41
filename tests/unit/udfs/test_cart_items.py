"""Cart lines from properties that deviate from Segment's spec: the cart uses what it can, and only a line it
cannot name is refused. The collector accepts such events and marks them (tests/unit/collector/)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pytest

from tests.support.events import BEGINNING, DAY, HOUR, MINUTE, as_json, event, product_added
from udfs.cart import AbandonmentTrigger, CartPolicy, CartState, Reminder, apply_event, fire_timer
from udfs.cart_items import CartItem, item_from, removal_from, snapshot_items, usable_currency
from udfs.delivery import parse_trigger
from udfs.email_content import ContentConfig, build_view_model
from udfs.events import InvalidEvent, parse_event
from udfs.render import Renderer

T0 = BEGINNING
POLICY = CartPolicy(reminders=(Reminder(HOUR, "cart_reminder_1"),), cooldown_ms=0, max_reminders=1, dedup_window=16)
LINE: dict[str, Any] = {"product_id": "mug", "name": "Camp Mug", "price": 12.0, "quantity": 2}
ABSENT = object()


def _props(**changes: Any) -> dict[str, Any]:
    """:data:`LINE` with ``changes``; a change to :data:`ABSENT` removes the key."""
    merged = {**LINE, **changes}
    return {key: value for key, value in merged.items() if value is not ABSENT}


# --- one line ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [ABSENT, None, "12.00", "twelve", True, -1, -0.01, math.nan, math.inf, [12], {}])
def test_a_line_without_a_usable_price_is_kept_with_its_price_unknown(price):
    item = item_from(_props(price=price), "properties.")

    assert (item.product_id, item.name, item.quantity) == ("mug", "Camp Mug", 2)
    assert (item.price, item.price_known) == (0.0, False)
    assert item.to_dict()["price"] is None


@pytest.mark.parametrize(("price", "expected"), [(0, 0.0), (12, 12.0), (12.5, 12.5)])
def test_a_usable_price_is_kept(price, expected):
    item = item_from(_props(price=price), "properties.")

    assert (item.price, item.price_known, item.to_dict()["price"]) == (expected, True, expected)


def test_an_unknown_price_survives_the_round_trip_through_state_json():
    unknown = item_from(_props(price=ABSENT), "properties.")
    known = item_from(_props(), "properties.")

    for item in (unknown, known):
        assert CartItem.from_dict(json.loads(json.dumps(item.to_dict()))) == item


def test_an_unknown_price_is_zero_so_the_cart_value_is_a_plain_sum():
    with pytest.raises(ValueError, match="unknown price"):
        CartItem("mug", "", 12.0, 1, price_known=False)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(ABSENT, 1), (None, 1), (0, 1), (-2, 1), (1.5, 1), ("2", 1), (True, 1), (math.nan, 1), (2.0, 2), (3, 3)],
)
def test_a_line_without_a_usable_quantity_counts_one(quantity, expected):
    assert item_from(_props(quantity=quantity), "properties.").quantity == expected


@pytest.mark.parametrize(
    ("quantity", "expected"), [(ABSENT, None), (None, None), (0, None), (-1, None), ("1", None), (1.5, None), (2.0, 2)]
)
def test_a_removal_without_a_usable_quantity_removes_the_whole_line(quantity, expected):
    assert removal_from(_props(quantity=quantity)) == ("mug", expected)


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ({"product_id": 7}, "7"),
        ({"product_id": ABSENT, "sku": "S-1"}, "S-1"),
        ({"product_id": True, "sku": "S-1"}, "S-1"),
        ({"product_id": " ", "sku": 9}, "9"),
        ({"product_id": 1.5, "sku": "S-1"}, "S-1"),
    ],
)
def test_the_line_is_named_by_the_first_usable_of_product_id_and_sku(ids, expected):
    assert item_from(_props(**ids), "properties.").product_id == expected
    assert removal_from(_props(**ids))[0] == expected


@pytest.mark.parametrize(
    "ids",
    [
        {"product_id": ABSENT},
        {"product_id": None, "sku": None},
        {"product_id": True},
        {"product_id": " ", "sku": ""},
        {"product_id": ABSENT, "sku": 1.5},
    ],
)
def test_a_line_with_no_usable_id_is_refused_naming_product_id(ids):
    with pytest.raises(InvalidEvent) as caught:
        item_from(_props(**ids), "properties.products[3].")
    assert caught.value.field == "properties.products[3].product_id"

    with pytest.raises(InvalidEvent) as removal:
        removal_from(_props(**ids))
    assert removal.value.field == "properties.product_id"


def test_unusable_texts_are_absent():
    item = item_from(_props(name=5, image_url=["x"], url=""), "properties.")

    assert (item.name, item.image_url, item.url) == ("", None, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("USD", "USD"), ("eur", "eur"), ("dollars", None), ("US", None), ("€€€", None), (840, None), (None, None)],
)
def test_a_currency_is_three_letters_or_absent(value, expected):
    assert usable_currency(value) == expected


# --- snapshots --------------------------------------------------------------------------------------------------


def test_a_snapshot_keeps_its_lines_without_a_price_or_quantity():
    items = snapshot_items([{"product_id": "a", "price": 2.0}, {"sku": "b", "price": "n/a", "quantity": "x"}])

    assert items == {"a": CartItem("a", "", 2.0, 1), "b": CartItem("b", "", 0.0, 1, price_known=False)}


@pytest.mark.parametrize(
    ("products", "field"),
    [
        ([{"product_id": "a"}, {"price": 1}], "properties.products[1].product_id"),
        ([{"product_id": "a"}, "b"], "properties.products[1]"),
        ({"a": 1}, "properties.products"),
    ],
)
def test_a_snapshot_the_cart_cannot_read_is_refused_rather_than_emptying_the_cart(products, field):
    with pytest.raises(InvalidEvent) as caught:
        snapshot_items(products)

    assert caught.value.field == field


# --- through the cart, delivery and the email -------------------------------------------------------------------


def _run(*docs: Mapping[str, Any]) -> CartState | None:
    state = None
    for doc in docs:
        state = apply_event(state, parse_event(as_json(doc)), POLICY).state
    return state


def _fire_until(state: CartState | None, until_ms: int) -> tuple[list[AbandonmentTrigger], CartState | None]:
    fired: list[AbandonmentTrigger] = []
    while state is not None and state.next_reminder_ms is not None and state.next_reminder_ms <= until_ms:
        decision = fire_timer(state, "ann", state.next_reminder_ms, POLICY)
        fired += decision.triggers
        state = decision.state
    return fired, state


def _track(event_name: str, t_ms: int, **properties: Any) -> dict[str, Any]:
    return event("track", "ann", t_ms, name=event_name, properties=properties)


def test_an_order_without_an_order_id_still_ends_the_cart():
    # As the collector now lets it through: no order_id, a cart_id of the wrong type, a currency that is no string.
    order = _track("Order Completed", T0 + 10 * MINUTE, cart_id=True, currency=5, total="lots")
    add = product_added("ann", T0, product_id="mug")

    fired, final = _fire_until(_run(add, order), T0 + 30 * DAY)

    assert (fired, final) == ([], None)
    assert len(_fire_until(_run(add), T0 + 30 * DAY)[0]) == 1  # without the order, the buyer would be reminded


def test_a_line_without_a_price_is_reminded_of_and_the_email_shows_it_without_a_price():
    unpriced = _track("Product Added", T0 + MINUTE, product_id="mug", name="Camp Mug", price="n/a", quantity=2)
    state = _run(product_added("ann", T0, product_id="lamp", price=39.9), unpriced)
    assert state is not None and state.value == 39.9

    [trigger], _ = _fire_until(state, T0 + DAY)
    doc = json.loads(trigger.to_json())
    parse_trigger(trigger.to_json())  # delivery takes the trigger
    model = build_view_model(doc, {"email": "ann@example.com"}, {}, "A", _CONFIG, issued_at=1)
    email = Renderer().render("cart_reminder_1", model, "A")

    assert {item["product_id"]: item["price"] for item in doc["items"]} == {"lamp": 39.9, "mug": None}
    lines = {item["product_id"]: (item["price_display"], item["line_total_display"]) for item in model["items"]}
    assert lines == {"lamp": ("$39.90", "$39.90"), "mug": (None, None)}
    assert model["cart_total_display"] is None  # a total without the mug would understate the cart
    assert "- Camp Mug: qty 2" in email.text and "Cart total" not in email.text
    assert "None" not in email.text and "None" not in email.html


_CONFIG = ContentConfig(
    shop_name="Trailhead",
    shop_url="https://shop.example/",
    cart_url="https://shop.example/cart",
    unsubscribe_base_url="https://mail.shop.example/unsubscribe",
    unsubscribe_secret=b"s" * 32,
    physical_address="12 Harbour Street, Portland, ME 04101, USA",
)
