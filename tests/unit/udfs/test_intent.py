"""Intent scoring and browse abandonment: sessions of events go through summarize and session_end_triggers."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import pytest

import udfs.intent
import udfs.intent_config
from tests.support.events import (
    BEGINNING,
    MINUTE,
    SECOND,
    as_json,
    cart_viewed,
    category_page_viewed,
    checkout_started,
    event,
    order_completed,
    page_viewed,
    product_added,
    product_viewed,
)
from udfs.events import ClickEvent, parse_event
from udfs.intent import (
    BrowsePolicy,
    BrowseTrigger,
    IntentWeights,
    SessionSummary,
    make_browse_trigger_id,
    session_end_triggers,
    summarize,
)

T0 = BEGINNING
HALF_LIFE = 30 * MINUTE  # the default
GAP = 30 * MINUTE
WEIGHTS = IntentWeights()
POLICY = BrowsePolicy()


def click(doc: Mapping[str, Any]) -> ClickEvent:
    return parse_event(as_json(doc))


def summary_of(
    *docs: Mapping[str, Any], weights: IntentWeights = WEIGHTS, policy: BrowsePolicy = POLICY
) -> SessionSummary:
    return summarize("ann", [click(doc) for doc in docs], weights, policy)


def triggers_of(*docs: Mapping[str, Any], policy: BrowsePolicy = POLICY) -> tuple[BrowseTrigger, ...]:
    summary = summary_of(*docs, policy=policy)
    return session_end_triggers(summary, summary.as_of_ms + GAP, policy)


def views(product_id: str, count: int, start_ms: int = T0, category: str | None = None) -> list[dict[str, Any]]:
    """``count`` views of one product, a second apart."""
    return [product_viewed("ann", start_ms + i * SECOND, product_id, category=category) for i in range(count)]


def with_props(doc: Mapping[str, Any], **props: Any) -> dict[str, Any]:
    return {**doc, "properties": {**doc["properties"], **props}}


def trigger_id(trigger_type: str, subject: str, session_start_ms: int = T0, person: str = "ann") -> str:
    key = f"{trigger_type}|{person}|{session_start_ms}|{subject}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


# --- the formula ---------------------------------------------------------------------------------------------------


def test_formula_on_a_hand_computed_session():
    summary = summary_of(
        page_viewed("ann", T0),  # view, one hour (two half-lives) old: 1 * 0.25
        product_viewed("ann", T0 + 30 * MINUTE, "shoe", category="shoes"),  # view, one half-life old: 1 * 0.5
        product_viewed("ann", T0 + 60 * MINUTE, "shoe", category="shoes"),  # view, newest: 1 * 1
        cart_viewed("ann", T0 + 60 * MINUTE),  # cart_view, newest: 2 * 1
    )

    # engagement_raw = 0.25 + 0.5 + 1 + 2 = 3.75            -> 100 * (1 - exp(-3.75 / 20)) = 17.10
    # intent_raw     = 2 (cart view) + 2 * (2 - 1) (repeat) -> 100 * (1 - exp(-4 / 20))    = 18.13
    # affinity       = shoes: 0.5 + 1
    assert summary == SessionSummary(
        person_id="ann",
        session_start_ms=T0,
        as_of_ms=T0 + 60 * MINUTE,
        engagement_score=17.1,
        intent_score=18.13,
        product_views={"shoe": 2},
        category_affinity={"shoes": 1.5},
        category_views={"shoes": 2},
        top_categories=("shoes",),
        recently_viewed=("shoe",),
        top_product="shoe",
        carted=False,
        purchased=False,
        event_count=4,
    )


@pytest.mark.parametrize(
    ("age_ms", "affinity", "engagement"),
    [(0, 1.0, 4.88), (HALF_LIFE, 0.5, 2.47), (2 * HALF_LIFE, 0.25, 1.24)],
)
def test_each_half_life_halves_an_events_weight(age_ms, affinity, engagement):
    # the identify weighs nothing; it only moves "as of" forward
    summary = summary_of(category_page_viewed("ann", T0, "shoes"), event("identify", "ann", T0 + age_ms))

    assert summary.category_affinity == {"shoes": affinity}
    assert summary.engagement_score == engagement  # 100 * (1 - exp(-affinity / 20))


def test_half_life_is_configurable():
    docs = (category_page_viewed("ann", T0, "shoes"), event("identify", "ann", T0 + 2 * HALF_LIFE))

    assert summary_of(*docs, weights=IntentWeights(half_life_ms=4 * HALF_LIFE)).category_affinity == {"shoes": 0.7071}


def test_repeat_views_add_intent_and_distinct_products_do_not():
    repeated = summary_of(*views("shoe", 3))
    distinct = summary_of(*[product_viewed("ann", T0 + i * SECOND, pid) for i, pid in enumerate("abc")])

    assert repeated.intent_score == 18.13  # 2 * (3 - 1) = 4 -> 100 * (1 - exp(-4 / 20))
    assert distinct.intent_score == 0.0
    assert repeated.engagement_score == distinct.engagement_score


def test_scores_saturate_at_100():
    summary = summary_of(*[checkout_started("ann", T0 + i * SECOND) for i in range(50)])

    assert summary.engagement_score == summary.intent_score == 100.0


def test_a_session_with_nothing_to_weigh_scores_zero():
    summary = summary_of(event("identify", "ann", T0), order_completed("ann", T0 + MINUTE))

    assert (summary.engagement_score, summary.intent_score, summary.event_count) == (0.0, 0.0, 2)
    assert summary.purchased


def test_page_and_screen_events_are_views_whatever_their_name():
    summary = summary_of(
        page_viewed("ann", T0, name="Product Added"),
        event("screen", "ann", T0, name="Checkout Started", properties={"category": "hats"}),
    )

    assert summary.engagement_score == 9.52  # two views: 100 * (1 - exp(-2 / 20))
    assert summary.intent_score == 0.0
    assert not summary.carted
    assert summary.category_views == {"hats": 1}


# --- categories and recently viewed --------------------------------------------------------------------------------


def test_top_categories_rank_by_affinity_then_name():
    newest = T0 + 2 * HALF_LIFE
    summary = summary_of(
        category_page_viewed("ann", T0, "hats"),  # 0.25
        product_viewed("ann", T0, "cap", category="hats"),  # 0.25
        product_viewed("ann", T0 + HALF_LIFE, "sock", category="socks"),  # 0.5, ties with hats, loses on the name
        product_viewed("ann", newest, "shoe", category="shoes"),  # 1
        category_page_viewed("ann", newest, "bags"),  # 1, ties with shoes, wins on the name
        policy=replace(POLICY, top_categories=3),
    )

    assert summary.category_affinity == {"hats": 0.5, "socks": 0.5, "shoes": 1.0, "bags": 1.0}
    assert summary.category_views == {"hats": 2, "socks": 1, "shoes": 1, "bags": 1}
    assert summary.top_categories == ("bags", "shoes", "hats")
    assert summary.top_category == "bags"  # affinity, not the view count, ranks


def test_top_categories_can_be_turned_off_in_the_profile_or_by_weight():
    docs = [category_page_viewed("ann", T0 + i * SECOND, "shoes") for i in range(5)]

    assert summary_of(*docs, policy=replace(POLICY, top_categories=0)).top_categories == ()
    unweighted = summary_of(*docs, weights=IntentWeights(category_view=0))
    assert unweighted.category_affinity == {"shoes": 0.0}
    assert (unweighted.top_categories, unweighted.top_category) == ((), None)
    assert session_end_triggers(unweighted, unweighted.as_of_ms + GAP, POLICY) == ()


def test_recently_viewed_is_newest_first_distinct_and_limited():
    docs = [product_viewed("ann", T0 + i * SECOND, pid) for i, pid in enumerate(["a", "b", "a", "c", "d"])]

    assert summary_of(*docs).recently_viewed == ("d", "c", "a", "b")
    assert summary_of(*docs, policy=replace(POLICY, recent_products=2)).recently_viewed == ("d", "c")
    assert summary_of(*docs, policy=replace(POLICY, recent_products=0)).recently_viewed == ()


# --- duplicates and arrival order ----------------------------------------------------------------------------------


def test_duplicates_do_not_double_count():
    once = [product_viewed("ann", T0, "shoe", category="shoes"), cart_viewed("ann", T0 + MINUTE)]

    twice = summary_of(*once, *once, once[0])

    assert twice == summary_of(*once)
    assert (twice.event_count, twice.product_views, twice.category_views) == (2, {"shoe": 1}, {"shoes": 1})


def _session() -> list[dict[str, Any]]:
    return [
        page_viewed("ann", T0),
        *views("shoe", 3, T0 + MINUTE, category="shoes"),
        *views("hat", 3, T0 + MINUTE, category="hats"),  # same times as the shoe views
        category_page_viewed("ann", T0 + 5 * MINUTE, "bags"),
        cart_viewed("ann", T0 + 6 * MINUTE),
        cart_viewed("ann", T0 + 6 * MINUTE, message_id="other-tab"),
        product_viewed("ann", T0 + MINUTE, "shoe", category="shoes"),  # a duplicate
    ]


def test_arrival_order_does_not_matter():
    docs = _session()
    expected = summary_of(*docs)
    expected_triggers = triggers_of(*docs)
    assert expected_triggers  # the session is worth an email, so the triggers are compared too

    for seed in range(25):
        shuffled = list(docs)
        random.Random(seed).shuffle(shuffled)
        assert summary_of(*shuffled) == expected
        assert summary_of(*shuffled).to_profile_fields() == expected.to_profile_fields()
        assert [t.to_json() for t in triggers_of(*shuffled)] == [t.to_json() for t in expected_triggers]


def test_copies_of_a_message_id_that_disagree_resolve_the_same_in_any_order():
    earlier = product_viewed("ann", T0, "shoe", message_id="m1")
    later = product_viewed("ann", T0 + MINUTE, "hat", message_id="m1")
    same_time = product_viewed("ann", T0, "bag", message_id="m1")

    assert summary_of(earlier, later) == summary_of(later, earlier)
    assert summary_of(earlier, later).product_views == {"shoe": 1}
    assert summary_of(earlier, same_time) == summary_of(same_time, earlier)


# --- browse abandonment --------------------------------------------------------------------------------------------


def test_browse_abandonment_names_the_most_viewed_product():
    docs = [*views("hat", 2, T0), *views("shoe", 3, T0 + MINUTE, category="shoes")]

    (trigger,) = triggers_of(*docs)

    assert trigger == BrowseTrigger(
        trigger_id=trigger_id("browse_abandonment", "shoe"),
        trigger_type="browse_abandonment",
        person_id="ann",
        session_start_ms=T0,
        fired_at_ms=T0 + MINUTE + 2 * SECOND + GAP,
        product_id="shoe",
        category=None,
        intent_score=summary_of(*docs).intent_score,
        recently_viewed=("shoe", "hat"),
    )


def test_product_ties_go_to_the_latest_viewed_then_to_the_smaller_id():
    assert triggers_of(*views("shoe", 3, T0), *views("hat", 3, T0 - MINUTE))[0].product_id == "shoe"
    assert triggers_of(*views("shoe", 3, T0), *views("hat", 3, T0 + MINUTE))[0].product_id == "hat"
    assert triggers_of(*views("b", 3, T0), *views("a", 3, T0))[0].product_id == "a"


def test_without_a_product_the_top_category_can_make_a_browse_abandonment():
    two_views = views("shoe", 2, T0, category="shoes")
    listing = [category_page_viewed("ann", T0 + i * MINUTE, "shoes") for i in (1, 2)]

    (trigger,) = triggers_of(*two_views, *listing)

    assert (trigger.trigger_type, trigger.product_id, trigger.category) == ("browse_abandonment", None, "shoes")
    assert trigger.trigger_id == trigger_id("browse_abandonment", "shoes")
    assert triggers_of(*two_views, *listing[:1]) == ()  # three views in the category are not enough


def test_the_product_is_preferred_to_the_category():
    docs = [*views("shoe", 3, T0), *[category_page_viewed("ann", T0 + i * MINUTE, "hats") for i in range(1, 6)]]

    assert [(t.product_id, t.category) for t in triggers_of(*docs)] == [("shoe", None)]


def test_thresholds_come_from_the_policy():
    docs = views("shoe", 2)

    assert triggers_of(*docs) == ()
    assert triggers_of(*docs, policy=replace(POLICY, min_product_views=2))[0].product_id == "shoe"


@pytest.mark.parametrize(
    ("doc", "carted", "purchased"),
    [
        (product_added("ann", T0 + HALF_LIFE), True, False),
        (checkout_started("ann", T0 + HALF_LIFE), True, False),
        (order_completed("ann", T0 + HALF_LIFE), False, True),
        (order_completed("ann", T0 - HALF_LIFE), False, True),  # before the browsing, in the same session
    ],
)
def test_no_trigger_when_the_session_has_a_cart_or_a_purchase(doc, carted, purchased):
    docs = [*views("shoe", 14, T0, category="shoes"), doc]  # would otherwise be browse and high intent
    summary = summary_of(*docs)

    assert (summary.carted, summary.purchased) == (carted, purchased)
    assert session_end_triggers(summary, summary.as_of_ms + GAP, POLICY) == ()


# --- high intent ---------------------------------------------------------------------------------------------------


def test_high_intent_fires_from_the_threshold():
    policy = replace(POLICY, min_product_views=100, min_category_views=100)  # browse abandonment out of the way

    # 13 views: 2 * 12 = 24 -> 69.88; 14 views: 2 * 13 = 26 -> 72.75
    assert summary_of(*views("shoe", 13)).intent_score == 69.88
    assert triggers_of(*views("shoe", 13), policy=policy) == ()
    (trigger,) = triggers_of(*views("shoe", 14, category="shoes"), policy=policy)

    assert (trigger.trigger_type, trigger.intent_score) == ("high_intent", 72.75)
    assert (trigger.product_id, trigger.category) == ("shoe", "shoes")
    assert trigger.trigger_id == trigger_id("high_intent", "shoe")


def test_a_score_equal_to_the_threshold_fires():
    summary = summary_of(*views("shoe", 2))
    policy = replace(POLICY, high_intent_threshold=summary.intent_score)

    assert [t.trigger_type for t in session_end_triggers(summary, summary.as_of_ms + GAP, policy)] == ["high_intent"]


def test_none_turns_high_intent_off():
    policy = replace(POLICY, min_product_views=100)
    docs = views("shoe", 30)

    assert [t.trigger_type for t in triggers_of(*docs, policy=policy)] == ["high_intent"]
    assert triggers_of(*docs, policy=replace(policy, high_intent_threshold=None)) == ()


def test_browse_abandonment_and_high_intent_can_both_fire():
    triggers = triggers_of(*views("shoe", 14))

    assert [t.trigger_type for t in triggers] == ["browse_abandonment", "high_intent"]
    assert triggers[0].trigger_id != triggers[1].trigger_id


# --- trigger ids and JSON ------------------------------------------------------------------------------------------


def test_trigger_ids_are_deterministic():
    docs = views("shoe", 14)

    first = triggers_of(*docs)
    replay = triggers_of(*docs)
    later_session = triggers_of(*views("shoe", 14, T0 + 3 * GAP))

    assert [t.to_json() for t in replay] == [t.to_json() for t in first]
    assert first[0].trigger_id == make_browse_trigger_id("browse_abandonment", "ann", T0, "shoe", None)
    assert {t.trigger_id for t in later_session}.isdisjoint(t.trigger_id for t in first)
    assert make_browse_trigger_id("high_intent", "ann", T0, None, "shoes") == trigger_id("high_intent", "shoes")
    assert make_browse_trigger_id("high_intent", "ann", T0, None, None) == trigger_id("high_intent", "")


def test_trigger_json_is_compact_sorted_and_ascii():
    (trigger,) = triggers_of(*views("größe-42", 3))

    raw = trigger.to_json()
    doc = json.loads(raw)

    assert raw.isascii()
    assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert doc == trigger.to_dict()
    assert doc["product_id"] == "größe-42"
    assert doc["recently_viewed"] == ["größe-42"]


def test_session_end_before_the_newest_event_is_a_wiring_error():
    summary = summary_of(*views("shoe", 3))

    with pytest.raises(ValueError, match="session_end_ms"):
        session_end_triggers(summary, summary.as_of_ms - 1, POLICY)


# --- odd properties ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "props",
    [
        {"product_id": ["shoe"], "category": ["shoes"]},
        {"product_id": {"id": "shoe"}, "category": {"name": "shoes"}},
        {"product_id": True, "category": True},
        {"product_id": 1.5, "category": 5},
        {"product_id": "  ", "category": " "},
        {"product_id": "", "category": ""},
        {"product_id": None, "category": None},
        {},
    ],
)
def test_odd_product_and_category_values_are_skipped_but_the_view_still_counts(props):
    summary = summary_of(event("track", "ann", T0, name="Product Viewed", properties=props))

    assert (summary.product_views, summary.category_affinity, summary.recently_viewed) == ({}, {}, ())
    assert summary.top_product is None
    assert summary.engagement_score == 4.88  # one fresh view


@pytest.mark.parametrize(
    ("props", "product_id"),
    [
        ({"product_id": 507}, "507"),
        ({"product_id": None, "sku": "SKU-1"}, "SKU-1"),
        ({"product_id": ["odd"], "sku": 9}, "9"),
        ({"product_id": "p1", "sku": "SKU-1"}, "p1"),
    ],
)
def test_product_id_falls_back_to_sku_and_accepts_integers(props, product_id):
    summary = summary_of(event("track", "ann", T0, name="Product Viewed", properties=props))

    assert summary.product_views == {product_id: 1}


def test_category_on_other_track_events_is_ignored():
    summary = summary_of(with_props(product_added("ann", T0), category="shoes"))

    assert summary.category_views == {}


def test_an_empty_window_is_a_wiring_error():
    with pytest.raises(ValueError, match="at least one event"):
        summarize("ann", [], WEIGHTS, POLICY)


# --- configuration -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["view", "cart_view", "cart_add", "checkout", "repeat_view", "category_view", "half_life_ms", "scale"]
)
@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "1", None, True])
def test_weights_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^IntentWeights\.{field} must be a finite number"):
        IntentWeights(**{field: value})


@pytest.mark.parametrize("field", ["half_life_ms", "scale"])
def test_half_life_and_scale_must_be_positive(field):
    with pytest.raises(ValueError, match=rf"^IntentWeights\.{field} must be a finite number > 0, got 0"):
        IntentWeights(**{field: 0})


def test_weights_of_zero_and_integers_are_accepted():
    weights = IntentWeights(view=0, cart_view=0, cart_add=0, checkout=0, repeat_view=0, category_view=0, scale=1)

    assert summary_of(*views("shoe", 3), weights=weights).intent_score == 0.0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"min_product_views": 0}, "min_product_views"),
        ({"min_product_views": 2.5}, "min_product_views"),
        ({"min_category_views": 0}, "min_category_views"),
        ({"recent_products": -1}, "recent_products"),
        ({"top_categories": True}, "top_categories"),
        ({"high_intent_threshold": 101}, "high_intent_threshold"),
        ({"high_intent_threshold": -0.5}, "high_intent_threshold"),
        ({"high_intent_threshold": float("nan")}, "high_intent_threshold"),
        ({"high_intent_threshold": "70"}, "high_intent_threshold"),
    ],
)
def test_policy_rejects_bad_values_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"^BrowsePolicy\.{field} must be"):
        replace(POLICY, **changes)


def test_config_is_keyword_only():
    with pytest.raises(TypeError):
        IntentWeights(1.0)  # type: ignore[misc]


# --- the profile ---------------------------------------------------------------------------------------------------


def test_profile_fields_are_strings_with_json_lists():
    summary = summary_of(
        product_viewed("ann", T0, "shoe", category="schuhe-größe"),
        product_viewed("ann", T0 + MINUTE, "hat", category="hats"),
    )

    fields = summary.to_profile_fields()

    assert fields == {
        "engagement_score": "9.41",  # 1 + 0.5 ** (1 / 30) = 1.9772 -> 100 * (1 - exp(-1.9772 / 20))
        "intent_score": "0.00",
        "top_categories": '["hats","schuhe-gr\\u00f6\\u00dfe"]',
        "recently_viewed": '["hat","shoe"]',
        "session_start_ms": str(T0),
        "scored_at_ms": str(T0 + MINUTE),
        "last_seen_ms": str(T0 + MINUTE),
    }
    assert json.loads(fields["top_categories"]) == ["hats", "schuhe-größe"]


# --- exports -------------------------------------------------------------------------------------------------------


def _public_names(module: Any) -> Iterable[str]:
    return (
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    )


@pytest.mark.parametrize("module", [udfs.intent, udfs.intent_config])
def test_all_covers_every_public_class_and_function(module):
    assert set(module.__all__) >= set(_public_names(module))
    assert all(hasattr(module, name) for name in module.__all__)


def test_intent_re_exports_the_config_classes():
    assert {"IntentWeights", "BrowsePolicy"} <= set(udfs.intent.__all__)
