"""Segment's E-commerce spec: how the properties of the cart and order events deviate from it, field by field."""

from __future__ import annotations

import pytest

from collector.ecommerce import ECOMMERCE_EVENTS, Deviation, DeviationReason, spec_deviations

MISSING, WRONG_TYPE, INVALID = "missing", "wrong_type", "invalid_value"


def _found(name, properties):
    return [(d.field, str(d.reason)) for d in spec_deviations(name, properties)]


@pytest.mark.parametrize(
    ("name", "properties"),
    [
        ("Product Viewed", {"product_id": "p1"}),
        ("Product Added", {"product_id": 7, "price": 10, "quantity": 2.0, "cart_id": "c1", "currency": "usd"}),
        ("Product Added", {"sku": "S-1", "price": 0, "quantity": 1, "anything": {"else": [1, 2]}}),
        ("Product Removed", {"product_id": "p1"}),
        ("Cart Viewed", {"cart_id": "c1"}),
        ("Cart Viewed", {"products": [{"product_id": "p1", "price": 1.5, "quantity": 1}]}),
        ("Checkout Started", {"value": 12.5, "products": [{"sku": "s", "price": 3, "quantity": 1}]}),
        ("Order Completed", {"order_id": "o1", "total": 10, "revenue": 9, "products": [{"product_id": "p"}]}),
        ("Signed Up", {"price": "free", "product_id": None}),
        ("order completed", {}),  # event names are case-sensitive at Segment too: a generic event
    ],
)
def test_properties_that_follow_the_spec_deviate_in_nothing(name, properties):
    assert spec_deviations(name, properties) == ()


@pytest.mark.parametrize(
    ("name", "properties", "expected"),
    [
        ("Order Completed", {"total": 1}, [("properties.order_id", MISSING)]),
        ("Order Completed", {"order_id": None}, [("properties.order_id", MISSING)]),
        ("Order Completed", {"order_id": "o", "revenue": "lots"}, [("properties.revenue", WRONG_TYPE)]),
        ("Order Completed", {"order_id": "o", "total": -5}, [("properties.total", INVALID)]),
        (
            "Order Completed",
            {"order_id": "o", "products": [{"price": 1}]},
            [("properties.products[0].product_id", MISSING)],
        ),
        ("Product Added", {"price": 1, "quantity": 1}, [("properties.product_id", MISSING)]),
        ("Product Added", {"product_id": "p", "quantity": 1}, [("properties.price", MISSING)]),
        ("Product Added", {"product_id": "p", "price": 1}, [("properties.quantity", MISSING)]),
        ("Product Added", {"product_id": "p", "price": "9.99", "quantity": 1}, [("properties.price", WRONG_TYPE)]),
        ("Product Added", {"product_id": "p", "price": True, "quantity": 1}, [("properties.price", WRONG_TYPE)]),
        ("Product Added", {"product_id": "p", "price": -1, "quantity": 1}, [("properties.price", INVALID)]),
        ("Product Added", {"product_id": "p", "price": 1, "quantity": 0}, [("properties.quantity", INVALID)]),
        ("Product Added", {"product_id": "p", "price": 1, "quantity": 1.5}, [("properties.quantity", INVALID)]),
        ("Product Added", {"product_id": "p", "price": 1, "quantity": "2"}, [("properties.quantity", WRONG_TYPE)]),
        (
            "Product Added",
            {"product_id": "p", "price": 1, "quantity": 1, "currency": "dollars"},
            [("properties.currency", INVALID)],
        ),
        ("Product Added", {"product_id": 1.5, "price": 1, "quantity": 1}, [("properties.product_id", WRONG_TYPE)]),
        ("Product Added", {"product_id": " ", "price": 1, "quantity": 1}, [("properties.product_id", INVALID)]),
        ("Product Added", {"product_id": "p", "price": 1, "quantity": 1, "name": 5}, [("properties.name", WRONG_TYPE)]),
        ("Product Removed", {"quantity": 1}, [("properties.product_id", MISSING)]),
        ("Product Removed", {"product_id": "p", "quantity": -1}, [("properties.quantity", INVALID)]),
        ("Product Viewed", {"sku": True}, [("properties.sku", WRONG_TYPE)]),
        ("Cart Viewed", {"products": {}}, [("properties.products", WRONG_TYPE)]),
        (
            "Cart Viewed",
            {"products": [{"product_id": "a", "price": 1, "quantity": 1}, "b"]},
            [("properties.products[1]", WRONG_TYPE)],
        ),
        (
            "Cart Viewed",
            {"products": [{"product_id": "a", "quantity": 1}]},
            [("properties.products[0].price", MISSING)],
        ),
        (
            "Checkout Started",
            {"products": [{"price": 1, "quantity": 1}]},
            [("properties.products[0].product_id", MISSING)],
        ),
    ],
)
def test_each_deviation_is_named_with_its_reason(name, properties, expected):
    assert _found(name, properties) == expected


def test_every_deviation_is_listed_types_first_then_what_is_missing():
    properties = {"price": "9.99", "quantity": 0, "products": "none"}

    assert _found("Product Added", properties) == [
        ("properties.price", WRONG_TYPE),
        ("properties.quantity", INVALID),
        ("properties.product_id", MISSING),
    ]


def test_the_metric_field_drops_indexes_so_its_labels_stay_bounded():
    deviation = Deviation("properties.products[12].price", DeviationReason.MISSING)

    assert deviation.metric_field == "properties.products[].price"
    assert deviation.to_dict() == {"field": "properties.products[12].price", "reason": "missing"}


def test_the_events_looked_at_are_the_cart_jobs():
    assert ECOMMERCE_EVENTS == {
        "Product Viewed",
        "Product Added",
        "Product Removed",
        "Cart Viewed",
        "Checkout Started",
        "Order Completed",
    }
