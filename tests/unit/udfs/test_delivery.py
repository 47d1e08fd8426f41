"""Delivery's records: triggers as the clickstream job writes them parse, anything else is named and rejected."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import udfs.delivery
from tests.support.events import BEGINNING, HOUR, browse_trigger_json, cart_trigger_json, product
from udfs.delivery import DeliveryRecord, InvalidTrigger, Trigger, parse_trigger
from udfs.events import InvalidEvent, dead_letter_record

T0 = BEGINNING
CART = cart_trigger_json("ann", T0, products=(product("p1", 10.0, 2), product("p2", 5.5, 1)))
BROWSE = browse_trigger_json("browse_abandonment", "ann", T0)
HIGH_INTENT = browse_trigger_json("high_intent", "ann", T0)


def doc_of(raw: bytes) -> dict[str, Any]:
    return json.loads(raw)


def rejection(doc: Any) -> InvalidTrigger:
    with pytest.raises(InvalidTrigger) as caught:
        parse_trigger(json.dumps(doc))
    return caught.value


# --- the contract with the clickstream job ---------------------------------------------------------------------------


def test_a_cart_reminder_from_the_cart_job_parses():
    trigger = parse_trigger(CART)

    assert trigger == Trigger(
        trigger_id=doc_of(CART)["trigger_id"],
        trigger_type="cart_abandonment",
        person_id="ann",
        template="cart_reminder_1",
        fired_at_ms=T0 + HOUR,
        priority=30,
        payload=doc_of(CART),
        cart_id="c1",
        last_change_ms=T0,
        session_start_ms=None,
    )
    assert trigger.payload["items"][1] == {**product("p2", 5.5, 1), "image_url": None, "url": None}
    assert trigger.payload["value"] == 25.5


@pytest.mark.parametrize(
    ("raw", "trigger_type", "priority"), [(BROWSE, "browse_abandonment", 10), (HIGH_INTENT, "high_intent", 20)]
)
def test_browse_triggers_from_the_intent_job_parse_with_their_type_as_template(raw, trigger_type, priority):
    trigger = parse_trigger(raw)

    assert trigger.trigger_type == trigger.template == trigger_type
    assert trigger.priority == priority
    assert trigger.person_id == "ann"
    assert trigger.session_start_ms == T0
    assert trigger.fired_at_ms == doc_of(raw)["fired_at_ms"]
    assert trigger.cart_id is None
    assert trigger.last_change_ms is None
    assert trigger.payload == doc_of(raw)


def test_text_input_is_accepted_as_well_as_bytes():
    assert parse_trigger(CART.decode()) == parse_trigger(CART)


def test_priorities_come_from_the_mapping_given_and_default_to_zero():
    assert parse_trigger(BROWSE, {"browse_abandonment": 99}).priority == 99
    assert parse_trigger(CART, {"browse_abandonment": 99}).priority == 0


def test_a_cart_reminder_without_cart_id_parses():
    trigger = parse_trigger(json.dumps({**doc_of(CART), "cart_id": None}))

    assert trigger.cart_id is None


def test_a_trigger_is_hashable_and_its_payload_is_not_part_of_the_hash():
    assert hash(parse_trigger(CART)) == hash(parse_trigger(CART))
    assert len({parse_trigger(CART), parse_trigger(CART), parse_trigger(BROWSE)}) == 2


# --- rejections name the field --------------------------------------------------------------------------------------


def without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.pop(key)


def setting(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.__setitem__(key, value)


def setting_item(key: str, value: Any, position: int = 0) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["items"][position].__setitem__(key, value)


def without_item_key(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["items"][0].pop(key)


CART_REJECTIONS = [
    (without("trigger_id"), "trigger_id", "missing"),
    (setting("trigger_id", "abc"), "trigger_id", "must be 32 lowercase hex digits, got string 'abc'"),
    (setting("trigger_id", "A" * 32), "trigger_id", "must be 32 lowercase hex digits"),
    (setting("trigger_id", 12), "trigger_id", "must be 32 lowercase hex digits, got number 12"),
    (without("trigger_type"), "trigger_type", "missing; expected one of browse_abandonment, cart_abandonment, high_"),
    (setting("trigger_type", "win_back"), "trigger_type", "string 'win_back' is not a known trigger type"),
    (without("person_id"), "person_id", "missing"),
    (setting("person_id", "  "), "person_id", "must not be empty"),
    (setting("person_id", 7), "person_id", "must be a string, got number 7"),
    (without("fired_at_ms"), "fired_at_ms", "missing"),
    (setting("fired_at_ms", "1767229200000"), "fired_at_ms", "must be an integer number of epoch milliseconds"),
    (setting("fired_at_ms", 1.5), "fired_at_ms", "got number 1.5"),
    (setting("fired_at_ms", True), "fired_at_ms", "got boolean True"),
    (setting("fired_at_ms", -1), "fired_at_ms", "got number -1"),
    (without("template"), "template", "missing"),
    (setting("template", ""), "template", "must not be empty"),
    (setting("template", ["a"]), "template", "must be a string, got array"),
    (without("last_change_ms"), "last_change_ms", "missing"),
    (setting("last_change_ms", None), "last_change_ms", "missing"),
    (setting("cart_id", 5), "cart_id", "must be a string or null, got number 5"),
    (without("items"), "items", "missing"),
    (setting("items", {}), "items", "must be an array, got object"),
    (setting("items", []), "items", "must not be empty"),
    (setting("items", ["p1"]), "items[0]", "must be an object, got string 'p1'"),
    (without_item_key("product_id"), "items[0].product_id", "missing"),
    (setting_item("product_id", 1), "items[0].product_id", "must be a string, got number 1"),
    (without_item_key("name"), "items[0].name", "missing"),
    (setting_item("name", 3), "items[0].name", "must be a string (may be empty), got number 3"),
    (without_item_key("price"), "items[0].price", "missing"),
    (setting_item("price", "x"), "items[0].price", "must be a number, got string 'x'"),
    (setting_item("price", -0.01), "items[0].price", "must be a finite number >= 0, got number -0.01"),
    (setting_item("price", True), "items[0].price", "must be a number, got boolean True"),
    (without_item_key("quantity"), "items[0].quantity", "missing"),
    (setting_item("quantity", 0), "items[0].quantity", "must be an integer >= 1, got number 0"),
    (setting_item("quantity", 1.5), "items[0].quantity", "must be an integer >= 1, got number 1.5"),
    (setting_item("price", "9.99", position=1), "items[1].price", "must be a number, got string '9.99'"),
    (without("value"), "value", "missing"),
    (setting("value", "25.5"), "value", "must be a number, got string '25.5'"),
    (setting("value", -1), "value", "must be a finite number >= 0"),
    (without("currency"), "currency", "missing"),
    (setting("currency", ""), "currency", "must not be empty"),
]


@pytest.mark.parametrize(("mutate", "field", "reason"), CART_REJECTIONS)
def test_each_bad_cart_field_is_named(mutate, field, reason):
    doc = doc_of(CART)
    mutate(doc)

    error = rejection(doc)

    assert error.field == field
    assert reason in error.reason
    assert str(error).startswith(f"field {field!r}: ")


def test_the_message_reads_as_the_field_then_the_problem():
    doc = doc_of(CART)
    doc["items"][0]["price"] = "x"

    assert str(rejection(doc)) == "field 'items[0].price': must be a number, got string 'x'"


@pytest.mark.parametrize("raw", [BROWSE, HIGH_INTENT])
@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (without("session_start_ms"), "session_start_ms", "missing"),
        (setting("session_start_ms", "today"), "session_start_ms", "got string 'today'"),
        (without("person_id"), "person_id", "missing"),
        (without("fired_at_ms"), "fired_at_ms", "missing"),
    ],
)
def test_each_bad_browse_field_is_named(raw, mutate, field, reason):
    doc = doc_of(raw)
    mutate(doc)

    error = rejection(doc)

    assert (error.field, reason in error.reason) == (field, True)


def test_browse_triggers_need_no_cart_fields():
    doc = {key: value for key, value in doc_of(BROWSE).items() if key not in ("product_id", "category")}

    assert parse_trigger(json.dumps(doc)).template == "browse_abandonment"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff{}", "payload is not valid UTF-8"),
        (b"{", "payload is not valid JSON"),
        (b"", "payload is not valid JSON"),
        (b"[1]", "payload must be a JSON object, got array"),
        (b"null", "payload must be a JSON object, got null"),
        (b'{"value": NaN}', "NaN is not allowed"),
        (b"[" * 100_000, "payload is not valid JSON"),
    ],
)
def test_unusable_payloads_are_rejected_as_a_whole(raw, reason):
    with pytest.raises(InvalidTrigger) as caught:
        parse_trigger(raw)

    assert caught.value.field == ""
    assert reason in str(caught.value)


def test_a_rejection_is_a_value_error_and_dead_letters_with_its_field():
    doc = doc_of(CART)
    doc["items"][0]["quantity"] = 0
    raw = json.dumps(doc).encode()
    with pytest.raises(InvalidTrigger) as caught:
        parse_trigger(raw)

    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, InvalidEvent)
    record = json.loads(dead_letter_record(raw, caught.value, "delivery"))
    assert record["field"] == "items[0].quantity"
    assert record["error"] == "field 'items[0].quantity': must be an integer >= 1, got number 0"


# --- delivery records -----------------------------------------------------------------------------------------------


def test_a_record_serializes_compact_sorted_and_ascii():
    record = DeliveryRecord(
        trigger_id="ce1b0ed1705a140a4bdba848241453a4",
        person_id="ann",
        trigger_type="cart_abandonment",
        template="cart_reminder_1",
        status="failed",
        reason="provider_rejected",
        decided_at_ms=T0,
        variant="B",
        provider="sandbox",
        provider_message_id=None,
        attempt=2,
        detail="550 mailbox unavailable: jürgen@example.com",
    )

    assert record.to_json() == (
        b'{"attempt":2,"decided_at_ms":1767225600000,"detail":"550 mailbox unavailable: j\\u00fcrgen@example.com",'
        b'"holdout":false,"person_id":"ann","provider":"sandbox","provider_message_id":null,'
        b'"reason":"provider_rejected","recovered":false,"send_after_ms":null,"status":"failed","template":"cart_reminder_1",'
        b'"trigger_id":"ce1b0ed1705a140a4bdba848241453a4","trigger_type":"cart_abandonment","variant":"B"}'
    )
    assert json.loads(record.to_json()) == record.to_dict()


def test_a_record_for_a_trigger_copies_its_identity():
    trigger = parse_trigger(BROWSE)

    record = DeliveryRecord.for_trigger(
        trigger, status="deferred", reason="quiet_hours", decided_at_ms=T0, send_after_ms=T0 + HOUR, variant="A"
    )

    assert (record.trigger_id, record.person_id, record.trigger_type, record.template) == (
        trigger.trigger_id,
        "ann",
        "browse_abandonment",
        "browse_abandonment",
    )
    assert (record.status, record.reason, record.send_after_ms, record.variant) == (
        "deferred",
        "quiet_hours",
        T0 + HOUR,
        "A",
    )
    assert (record.holdout, record.attempt, record.provider, record.detail) == (False, 0, None, None)


@pytest.mark.parametrize("status", ["sent", "suppressed", "deferred", "failed", "uncertain"])
def test_every_status_is_accepted(status):
    assert (
        DeliveryRecord.for_trigger(parse_trigger(CART), status=status, reason=None, decided_at_ms=T0).status == status
    )


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="status must be one of"):
        DeliveryRecord.for_trigger(parse_trigger(CART), status="bounced", reason=None, decided_at_ms=T0)


def test_all_covers_every_public_class_and_function():
    public = {
        name
        for name, value in vars(udfs.delivery).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == "udfs.delivery"
    }

    assert set(udfs.delivery.__all__) >= public
    assert all(hasattr(udfs.delivery, name) for name in udfs.delivery.__all__)
