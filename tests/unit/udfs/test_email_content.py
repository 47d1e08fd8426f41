"""The view model: what each email says, its fallbacks, its recommendations, and every bad input named."""

from __future__ import annotations

import inspect
import json
from decimal import Decimal
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import udfs.content_fields
import udfs.email_content
import udfs.money
import udfs.profile_fields
from udfs.cart import AbandonmentTrigger, CartItem
from udfs.email_content import (
    FALLBACK_GREETING,
    ContentConfig,
    InvalidContent,
    Offer,
    build_view_model,
    format_money,
    template_for,
)
from udfs.events import InvalidEvent, dead_letter_record
from udfs.intent import BrowseTrigger
from udfs.traits import profile_fields_from_traits
from udfs.unsubscribe import verify

SECRET = b"s" * 32
ISSUED = 1_795_000_000
CONFIG = ContentConfig(
    shop_name="Trailhead",
    shop_url="https://shop.example/",
    cart_url="https://shop.example/cart",
    cart_restore_url="https://shop.example/cart/restore/{cart_id}",
    category_url="https://shop.example/c/{category}",
    unsubscribe_base_url="https://mail.shop.example/unsubscribe",
    unsubscribe_secret=SECRET,
    physical_address="12 Harbour Street, Portland, ME 04101, USA",
    offer=Offer(code="TRAIL10", description="Take 10% off."),
)
CATALOG: dict[str, dict[str, Any]] = {
    "boot": {"name": "Trail Boot", "price": 129.0, "category": "shoes", "image_url": "/img/boot.jpg", "url": "/p/boot"},
    "sock": {"name": "Wool Socks", "price": 14.5, "category": "apparel", "url": "https://shop.example/p/sock"},
    "lamp": {"name": "Head Lamp", "price": 39.9, "category": "gear", "url": "https://shop.example/p/lamp"},
    "flask": {"name": "Steel Flask", "price": 24.0, "category": "gear"},
    "tent": {"name": "Tent", "category": "gear"},
}


def _config(**changes: Any) -> ContentConfig:
    fields = {name: getattr(CONFIG, name) for name in ContentConfig.__dataclass_fields__}
    return ContentConfig(**{**fields, **changes})


def cart_trigger(**changes: Any) -> dict[str, Any]:
    """A real AbandonmentTrigger, through JSON as delivery reads it off ``email.triggers``."""
    items = (
        CartItem("boot", "Trail Boot", 129.0, 1, "https://shop.example/img/boot.jpg", "https://shop.example/p/boot"),
        CartItem("sock", "Wool Socks", 14.5, 2),
    )
    trigger = AbandonmentTrigger(
        trigger_id="t1",
        person_id="user-ann",
        cart_id="c 1/2",
        reminder_index=1,
        template="cart_reminder_1",
        fired_at_ms=1,
        last_change_ms=0,
        currency="USD",
        value=158.0,
        items=items,
    )
    return {**json.loads(trigger.to_json()), **changes}


def browse_trigger(kind: str = "browse_abandonment", **changes: Any) -> dict[str, Any]:
    trigger = BrowseTrigger(
        trigger_id="b1",
        trigger_type=kind,
        person_id="user-bo",
        session_start_ms=0,
        fired_at_ms=1,
        product_id="boot",
        category=None,
        intent_score=80.0,
        recently_viewed=("boot", "lamp"),
    )
    return {**json.loads(trigger.to_json()), **changes}


PROFILE = {"email": "ann@example.com", "first_name": "Ann"}


def build(trigger: dict[str, Any], profile: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    return build_view_model(
        trigger,
        PROFILE if profile is None else profile,
        kwargs.pop("catalog", CATALOG),
        kwargs.pop("variant", "A"),
        kwargs.pop("config", CONFIG),
        issued_at=ISSUED,
    )


# --- the cart email ---------------------------------------------------------------------------------------------


def test_cart_view_model() -> None:
    model = build(cart_trigger())
    assert model["template"] == "cart_reminder_1" and model["variant"] == "A" and model["reminder_index"] == 1
    assert model["greeting"] == "Hi Ann," and model["first_name"] == "Ann" and model["email"] == "ann@example.com"
    assert model["currency"] == "USD" and model["item_count"] == 3 and model["cart_total_display"] == "$158.00"
    boot, sock = model["items"]
    assert boot == {
        "product_id": "boot",
        "name": "Trail Boot",
        "image_url": "https://shop.example/img/boot.jpg",
        "url": _utm("https://shop.example/p/boot", "cart_reminder_1", "A"),
        "price_display": "$129.00",
        "quantity": 1,
        "line_total_display": "$129.00",
    }
    assert (sock["price_display"], sock["quantity"], sock["line_total_display"]) == ("$14.50", 2, "$29.00")
    assert sock["url"] == "https://shop.example/p/sock?" + _utm_query("cart_reminder_1", "A")  # from the catalog
    assert sock["image_url"] is None  # neither the trigger nor the catalog has one
    assert model["product"] is None and model["category"] is None and model["category_url"] is None
    assert model["offer"] == {"code": "TRAIL10", "description": "Take 10% off."}
    assert model["shop_name"] == "Trailhead" and model["physical_address"].startswith("12 Harbour")
    json.dumps(model)  # plain data only


def test_every_key_is_always_there() -> None:
    """StrictUndefined templates rely on it: a missing key would be an error, not a blank."""
    keys = set(build(cart_trigger()))
    assert keys == set(build(browse_trigger())) == set(build(browse_trigger("high_intent"), {"email": "a@b.co"}))


def test_cart_url_restores_the_cart_by_id_quoted_and_tracked() -> None:
    url = urlsplit(build(cart_trigger())["cart_url"])
    assert url.path == "/cart/restore/c%201%2F2"
    assert parse_qs(url.query) == {
        "utm_source": ["cartpulse"],
        "utm_medium": ["email"],
        "utm_campaign": ["cart_reminder_1"],
        "utm_content": ["A"],
    }
    assert build(cart_trigger(cart_id=None))["cart_url"].startswith("https://shop.example/cart?")
    assert build(cart_trigger(), config=_config(cart_restore_url=None))["cart_url"].startswith(
        "https://shop.example/cart?"
    )


def test_utm_can_be_turned_off_and_never_overrides_the_shops_own() -> None:
    model = build(cart_trigger(), config=_config(utm_source=None, cart_url="https://shop.example/cart?utm_source=x"))
    assert model["items"][0]["url"] == "https://shop.example/p/boot"
    assert model["cart_url"].startswith("https://shop.example/cart/restore/")
    kept = build(cart_trigger(cart_id=None), config=_config(cart_url="https://shop.example/cart?utm_source=x"))
    assert parse_qs(urlsplit(kept["cart_url"]).query)["utm_source"] == ["x"]


def test_line_totals_are_rounded_per_line_and_add_up() -> None:
    items = [
        {"product_id": "a", "name": "A", "price": 0.125, "quantity": 3},  # 0.13 x 3 = 0.39, not round(0.375)
        {"product_id": "b", "name": "B", "price": 19.99, "quantity": 3},
    ]
    model = build(cart_trigger(items=items))
    assert [i["line_total_display"] for i in model["items"]] == ["$0.39", "$59.97"]
    assert model["cart_total_display"] == "$60.36"


def test_cart_currency_comes_from_the_trigger() -> None:
    model = build(cart_trigger(currency="eur"))
    assert model["currency"] == "EUR" and model["cart_total_display"] == "€158.00"
    assert build(cart_trigger(currency="JPY"))["items"][1]["line_total_display"] == "¥30"  # 14.5 -> 15 yen, x2


def test_missing_item_details_fall_back_to_the_catalog_then_a_neutral_name() -> None:
    items = [
        {"product_id": "lamp", "name": "", "price": 10, "quantity": 1},
        {"product_id": "unknown", "name": None, "price": 1, "quantity": 1, "image_url": None, "url": None},
    ]
    lamp, unknown = build(cart_trigger(items=items))["items"]
    assert lamp["name"] == "Head Lamp" and lamp["url"].startswith("https://shop.example/p/lamp?")
    assert unknown["name"] == "Your item" and unknown["image_url"] is None
    assert unknown["url"].startswith("https://shop.example/cart/restore/")  # no product page: the cart


def test_product_names_are_kept_verbatim_but_on_one_line() -> None:
    """Escaping is the renderer's job; the view model only removes line breaks and control characters."""
    items = [{"product_id": "x", "name": "<b>Red</b>\r\nBcc: x@y\x00 {{ 7*7 }}", "price": 1, "quantity": 1}]
    assert build(cart_trigger(items=items))["items"][0]["name"] == "<b>Red</b> Bcc: x@y {{ 7*7 }}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("javascript:alert(1)", None),
        (" JavaScript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("mailto:a@b.c", None),
        ("/p/x?a=1", "https://shop.example/p/x?a=1"),
        ("//cdn.example/p.jpg", "https://cdn.example/p.jpg"),
        ("http://shop.example/p/x", "http://shop.example/p/x"),
    ],
)
def test_only_http_urls_reach_the_email(url: str, expected: str | None) -> None:
    items = [{"product_id": "x", "name": "X", "price": 1, "quantity": 1, "image_url": url, "url": url}]
    item = build(cart_trigger(items=items), config=_config(utm_source=None))["items"][0]
    assert item["image_url"] == expected
    assert item["url"] == (expected or "https://shop.example/cart/restore/c%201%2F2")


# --- greetings --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "greeting"),
    [
        ({"first_name": "Ann"}, "Hi Ann,"),
        ({"first_name": "  Mary   Ann "}, "Hi Mary Ann,"),
        ({}, FALLBACK_GREETING),
        ({"first_name": ""}, FALLBACK_GREETING),
        ({"first_name": "   "}, FALLBACK_GREETING),
        ({"traits": '{"firstName": "Bo"}'}, "Hi Bo,"),
        ({"traits": '{"first_name": "Cy"}'}, "Hi Cy,"),
        ({"traits": "{}"}, FALLBACK_GREETING),
        ({"first_name": "Ann\r\nBcc: x@y"}, FALLBACK_GREETING),
        ({"first_name": "Ann\u2028Bcc: x@y"}, FALLBACK_GREETING),
        ({"first_name": "A" * 65}, FALLBACK_GREETING),
        ({"first_name": "<script>alert(1)</script>"}, "Hi <script>alert(1)</script>,"),  # escaped when rendered
        ({"first_name": "Zoë"}, "Hi Zoë,"),
    ],
)
def test_greeting_and_its_fallbacks(profile: dict[str, str], greeting: str) -> None:
    model = build(cart_trigger(), {"email": "a@example.com", **profile})
    assert model["greeting"] == greeting
    assert (model["first_name"] is None) == (greeting == FALLBACK_GREETING)


def test_the_email_may_come_from_traits() -> None:
    assert build(cart_trigger(), {"traits": '{"email": "t@example.com"}'})["email"] == "t@example.com"


def test_traits_are_read_only_when_needed() -> None:
    """A bad traits blob does not cost an email whose address and name are top-level fields."""
    assert build(cart_trigger(), {**PROFILE, "traits": "{not json"})["greeting"] == "Hi Ann,"


def test_profiles_as_the_intent_job_writes_them_from_identify() -> None:
    identify = {"type": "identify", "traits": {"email": "Bo@Example.com", "name": "Bo Diddley"}}
    model = build(cart_trigger(), profile_fields_from_traits(identify))
    assert (model["email"], model["greeting"]) == ("bo@example.com", "Hi Bo,")


def test_the_unsubscribe_link_is_signed_for_this_person() -> None:
    url = build(cart_trigger())["unsubscribe_url"]
    assert url.startswith("https://mail.shop.example/unsubscribe?token=")
    token = parse_qs(urlsplit(url).query)["token"][0]
    assert verify(token, SECRET, max_age=60, now=ISSUED) == ("user-ann", "ann@example.com")


# --- browse and high intent, recommendations -------------------------------------------------------------------


def test_browse_abandonment_features_the_product_and_recommends_others() -> None:
    profile = {**PROFILE, "recently_viewed": '["boot","lamp","sock"]', "top_categories": '["gear"]'}
    model = build(browse_trigger(), profile)
    assert model["template"] == "browse_abandonment" and model["items"] == [] and model["cart_total_display"] is None
    assert model["product"]["name"] == "Trail Boot" and model["product"]["price_display"] == "$129.00"
    assert model["product"]["image_url"] == "https://shop.example/img/boot.jpg"  # relative, resolved to the shop
    assert [r["product_id"] for r in model["recommendations"]] == ["lamp", "sock", "flask"]


def test_recommendations_skip_the_cart_unknown_products_and_repeats() -> None:
    profile = {
        **PROFILE,
        "recently_viewed": '["nope","boot","lamp","lamp"]',
        "top_categories": '["gear","apparel"]',
        "cart": json.dumps({"items": [{"product_id": "lamp"}, {"product_id": "sock"}]}),
    }
    model = build(browse_trigger("high_intent", product_id=None), profile)
    assert [r["product_id"] for r in model["recommendations"]] == ["boot", "flask", "tent"]
    tent = model["recommendations"][2]
    assert tent["price_display"] is None and tent["image_url"] is None  # the catalog has neither
    assert tent["url"].startswith("https://shop.example/?")  # no product page: the shop


def test_cart_emails_recommend_what_is_not_in_the_cart() -> None:
    profile = {**PROFILE, "recently_viewed": '["sock","lamp"]'}
    assert [r["product_id"] for r in build(cart_trigger(), profile)["recommendations"]] == ["lamp"]


def test_recommendations_stop_at_the_maximum_and_can_be_empty() -> None:
    profile = {**PROFILE, "recently_viewed": '["boot","sock","lamp","flask","tent"]'}
    assert len(build(browse_trigger(product_id=None), profile)["recommendations"]) == 3
    assert build(browse_trigger(product_id=None), profile, config=_config(max_recommendations=1))["recommendations"]
    assert build(browse_trigger(), profile, catalog={})["recommendations"] == []
    assert build(cart_trigger(), PROFILE)["recommendations"] == []


def test_the_trigger_s_recently_viewed_stands_in_when_the_profile_has_none() -> None:
    model = build(browse_trigger(), PROFILE)
    assert [r["product_id"] for r in model["recommendations"]] == ["lamp"]


def test_a_category_browse_links_the_category_and_recommends_from_it() -> None:
    model = build(browse_trigger(product_id=None, category="gear & more\n"), PROFILE)
    assert model["product"] is None and model["category"] == "gear & more"
    assert model["category_url"].startswith("https://shop.example/c/gear%20%26%20more?")
    no_pattern = build(browse_trigger(product_id=None, category="gear"), PROFILE, config=_config(category_url=None))
    assert no_pattern["category_url"].startswith("https://shop.example/?")


def test_a_product_the_catalog_does_not_know_is_not_featured() -> None:
    assert build(browse_trigger(product_id="ghost"), PROFILE)["product"] is None


def test_no_offer_configured() -> None:
    assert build(browse_trigger("high_intent"), PROFILE, config=_config(offer=None))["offer"] is None


# --- bad input is named ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"trigger_id": None}, "trigger.trigger_id"),
        ({"person_id": ""}, "trigger.person_id"),
        ({"person_id": 7}, "trigger.person_id"),
        ({"trigger_type": "sms"}, "trigger.trigger_type"),
        ({"template": None}, "trigger.template"),
        ({"currency": None}, "trigger.currency"),
        ({"currency": "US"}, "trigger.currency"),
        ({"items": []}, "trigger.items"),
        ({"items": "boot"}, "trigger.items"),
        ({"items": ["boot"]}, "trigger.items[0]"),
        ({"items": [{"name": "x", "price": 1, "quantity": 1}]}, "trigger.items[0].product_id"),
        ({"items": [{"product_id": "a", "price": "9.99", "quantity": 1}]}, "trigger.items[0].price"),
        ({"items": [{"product_id": "a", "price": float("nan"), "quantity": 1}]}, "trigger.items[0].price"),
        ({"items": [{"product_id": "a", "price": -1, "quantity": 1}]}, "trigger.items[0].price"),
        ({"items": [{"product_id": "a", "price": 1, "quantity": 0}]}, "trigger.items[0].quantity"),
        ({"items": [{"product_id": "a", "price": 1, "quantity": True}]}, "trigger.items[0].quantity"),
        ({"items": [{"product_id": "a", "price": 1, "quantity": 1, "name": 5}]}, "trigger.items[0].name"),
        ({"items": [{"product_id": "a", "price": 1, "quantity": 1, "url": ["x"]}]}, "trigger.items[0].url"),
        ({"reminder_index": "1"}, "trigger.reminder_index"),
    ],
)
def test_a_bad_trigger_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidContent) as caught:
        build(cart_trigger(**changes))
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        ({"first_name": "Ann"}, "profile.email"),
        ({"email": "not-an-address"}, "profile.email"),
        ({"email": "a@b.co\r\nBcc: x@y"}, "profile.email"),
        ({"email": "a@b.co", "cart": "{not json"}, "profile.cart"),
        ({"email": "a@b.co", "cart": "[]"}, "profile.cart"),
        ({"email": "a@b.co", "cart": '{"items": {}}'}, "profile.cart.items"),
        ({"email": "a@b.co", "cart": '{"items": [{"name": "x"}]}'}, "profile.cart.items[0].product_id"),
        ({"email": "a@b.co", "recently_viewed": "boot,lamp"}, "profile.recently_viewed"),
        ({"email": "a@b.co", "recently_viewed": '{"boot": 1}'}, "profile.recently_viewed"),
        ({"email": "a@b.co", "recently_viewed": '["boot", null]'}, "profile.recently_viewed[1]"),
        ({"email": "a@b.co", "top_categories": '"gear"'}, "profile.top_categories"),
        ({"email": "a@b.co", "traits": "[1]"}, "profile.traits"),
    ],
)
def test_a_bad_profile_field_names_the_field(profile: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidContent) as caught:
        build(browse_trigger(), profile)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ("Trail Boot", "catalog['boot']"),
        ({"price": 1}, "catalog['boot'].name"),
        ({"name": "B", "price": "cheap"}, "catalog['boot'].price"),
        ({"name": "B", "image_url": 3}, "catalog['boot'].image_url"),
    ],
)
def test_a_bad_catalog_entry_in_use_names_the_field(entry: Any, field: str) -> None:
    with pytest.raises(InvalidContent) as caught:
        build(browse_trigger(), PROFILE, catalog={"boot": entry})
    assert caught.value.field == field


def test_bad_trigger_shapes_and_variants() -> None:
    with pytest.raises(InvalidContent, match="trigger"):
        build_view_model([], PROFILE, CATALOG, "A", CONFIG, issued_at=ISSUED)  # type: ignore[arg-type]
    with pytest.raises(InvalidContent, match="profile"):
        build_view_model(cart_trigger(), None, CATALOG, "A", CONFIG, issued_at=ISSUED)  # type: ignore[arg-type]
    for variant in ("", "A B", "A\n", "É", None):
        with pytest.raises(InvalidContent) as caught:
            build(cart_trigger(), variant=variant)
        assert caught.value.field == "variant"


def test_invalid_content_is_dead_lettered_with_its_field() -> None:
    with pytest.raises(InvalidContent) as caught:
        build(cart_trigger(items=[]))
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, InvalidEvent)
    record = json.loads(dead_letter_record(json.dumps(cart_trigger(items=[])), caught.value, "render"))
    assert record["field"] == "trigger.items" and record["stage"] == "render"


def test_template_for() -> None:
    assert template_for(cart_trigger(template="cart_reminder_2")) == "cart_reminder_2"
    assert template_for(browse_trigger("high_intent")) == "high_intent"
    with pytest.raises(InvalidContent):
        template_for({"trigger_type": "push"})


# --- money ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (0, "USD", "$0.00"),
        (1234.5, "USD", "$1,234.50"),
        (1234567.891, "USD", "$1,234,567.89"),
        (0.005, "USD", "$0.01"),  # half up, not banker's
        (0.1 + 0.2, "USD", "$0.30"),
        (2.675, "GBP", "£2.68"),  # the float 2.675 is 2.67499...; its shortest repr rounds as a person would
        (9.99, "EUR", "€9.99"),
        (1234.5, "JPY", "¥1,235"),
        (1000, "KRW", "₩1,000"),
        (12, "CHF", "CHF 12.00"),
        (12, "CAD", "CA$12.00"),
        (12, "XYZ", "XYZ 12.00"),
        (-5, "USD", "-$5.00"),
        (Decimal("19.999"), "USD", "$20.00"),
    ],
)
def test_format_money(amount: float | Decimal, currency: str, shown: str) -> None:
    assert format_money(amount, currency) == shown


# --- config -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"shop_url": "shop.example"}, "shop_url"),
        ({"cart_url": "javascript:alert(1)"}, "cart_url"),
        ({"unsubscribe_base_url": "/u"}, "unsubscribe_base_url"),
        ({"unsubscribe_secret": b"short"}, "unsubscribe_secret"),
        ({"unsubscribe_secret": "s" * 40}, "unsubscribe_secret"),
        ({"physical_address": " "}, "physical_address"),
        ({"currency": "usd"}, "currency"),
        ({"max_recommendations": -1}, "max_recommendations"),
    ],
)
def test_config_is_checked(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config(**changes)


def test_config_never_prints_the_secret() -> None:
    assert SECRET.decode() not in repr(CONFIG)


@pytest.mark.parametrize(
    ("module", "also"),
    [
        # constants, and the names callers have always imported from here though they now live elsewhere
        (udfs.email_content, {"BROWSE_TEMPLATES", "FALLBACK_GREETING", "ViewModel", "InvalidContent", "format_money"}),
        (udfs.money, set()),
        (udfs.content_fields, set()),
        (udfs.profile_fields, set()),
    ],
    ids=["email_content", "money", "content_fields", "profile_fields"],
)
def test_all_lists_the_public_names(module: ModuleType, also: set[str]) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    }
    assert public | also == set(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)


def _utm_query(template: str, variant: str) -> str:
    return f"utm_source=cartpulse&utm_medium=email&utm_campaign={template}&utm_content={variant}"


def _utm(url: str, template: str, variant: str) -> str:
    return f"{url}?{_utm_query(template, variant)}"
