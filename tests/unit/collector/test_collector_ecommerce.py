"""Segment's E-commerce spec: the properties the cart job relies on are checked, other events pass."""

from __future__ import annotations

import pytest

from collector.ecommerce import ECOMMERCE_EVENTS, check_properties
from collector.errors import Rejected


@pytest.mark.parametrize(
    ("name", "properties"),
    [
        ("Product Viewed", {"product_id": "p1"}),
        ("Product Added", {"product_id": 7, "price": 10, "quantity": 2.0, "cart_id": "c1", "currency": "usd"}),
        ("Product Added", {"sku": "S-1", "price": 0, "anything": {"else": [1, 2]}}),
        ("Product Removed", {"product_id": "p1"}),
        ("Cart Viewed", {"cart_id": "c1"}),
        ("Cart Viewed", {"products": [{"product_id": "p1", "price": 1.5, "quantity": 1}]}),
        ("Checkout Started", {"value": 12.5, "products": [{"sku": "s", "price": 3}]}),
        ("Order Completed", {"order_id": "o1", "total": 10, "revenue": 9, "products": [{"product_id": "p"}]}),
        ("Signed Up", {"price": "free", "product_id": None}),
    ],
)
def test_valid_properties_pass(name, properties):
    check_properties(name, properties)


@pytest.mark.parametrize(
    ("name", "properties", "field", "words"),
    [
        ("Product Added", {"price": 1}, "properties.product_id", "missing"),
        ("Product Added", {"product_id": "p"}, "properties.price", "missing"),
        ("Product Added", {"product_id": "p", "price": "9.99"}, "properties.price", "must be a number"),
        ("Product Added", {"product_id": "p", "price": True}, "properties.price", "must be a number"),
        ("Product Added", {"product_id": "p", "price": -1}, "properties.price", ">= 0"),
        ("Product Added", {"product_id": "p", "price": 1, "quantity": 0}, "properties.quantity", ">= 1"),
        ("Product Added", {"product_id": "p", "price": 1, "quantity": 1.5}, "properties.quantity", "whole number"),
        ("Product Added", {"product_id": "p", "price": 1, "currency": "dollars"}, "properties.currency", "ISO 4217"),
        ("Product Added", {"product_id": 1.5, "price": 1}, "properties.product_id", "string or an integer"),
        ("Product Added", {"product_id": " ", "price": 1}, "properties.product_id", "blank"),
        ("Product Removed", {"quantity": 1}, "properties.product_id", "missing"),
        ("Cart Viewed", {"products": {}}, "properties.products", "array"),
        ("Cart Viewed", {"products": [{"product_id": "a", "price": 1}, "b"]}, "properties.products[1]", "object"),
        ("Cart Viewed", {"products": [{"product_id": "a"}]}, "properties.products[0].price", "missing"),
        ("Checkout Started", {"products": [{"price": 1}]}, "properties.products[0].product_id", "missing"),
        ("Order Completed", {"total": 1}, "properties.order_id", "missing"),
        ("Order Completed", {"order_id": "o", "revenue": "lots"}, "properties.revenue", "must be a number"),
    ],
)
def test_each_bad_property_is_named(name, properties, field, words):
    with pytest.raises(Rejected) as caught:
        check_properties(name, properties)

    assert caught.value.field == field and words in caught.value.reason
    assert caught.value.code == "ecommerce_schema"


def test_the_checked_events_are_the_cart_jobs():
    assert ECOMMERCE_EVENTS == {
        "Product Viewed",
        "Product Added",
        "Product Removed",
        "Cart Viewed",
        "Checkout Started",
        "Order Completed",
    }
