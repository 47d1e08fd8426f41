"""Delivery guardrails: every rule and reason, in order, on triggers as the clickstream job writes them."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pytest

import udfs.guardrail_policy
import udfs.guardrails
from connectors.redis import cart_fields as profile_cart_fields
from tests.support.events import BEGINNING, DAY, HOUR, MINUTE, browse_trigger_json, cart_trigger_json, product
from udfs.cart import CartItem
from udfs.delivery import DeliveryRecord, Trigger, parse_trigger
from udfs.guardrails import (
    GuardrailPolicy,
    InvalidProfile,
    Verdict,
    assign_variant,
    decide,
    frequency_decision,
    in_holdout,
    next_allowed_ms,
    pick_next,
    queue_order,
    still_valid,
)

NOON = BEGINNING + 12 * HOUR  # 2026-01-01T12:00Z: daytime in UTC, so quiet hours stay out of the way
POLICY = GuardrailPolicy(holdout_percent=0)  # nobody held out, unless a test says so
CART = parse_trigger(cart_trigger_json("ann", NOON))  # last change at noon, fired at 13:00
BROWSE = parse_trigger(browse_trigger_json("browse_abandonment", "ann", NOON))  # session from noon, fired 12:30
HIGH_INTENT = parse_trigger(browse_trigger_json("high_intent", "ann", NOON))
NOW = NOON + 2 * HOUR
IDS = [f"person-{i}" for i in range(10_000)]


def at(text: str) -> int:
    """An ISO date-time with offset as epoch ms."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def cart_fields(products: Iterable[Mapping[str, Any]], updated_ms: int) -> dict[str, str]:
    """The profile's cart fields as the clickstream job writes them (``udfs/flink/clickstream.py``); no products:
    emptied."""
    items = [CartItem.from_dict(p) for p in products]
    cart = {
        "cart_id": "c1" if items else None,
        "currency": "USD" if items else "",
        "value": round(sum(item.price * item.quantity for item in items), 2),
        "items": [item.to_dict() for item in items],
    }
    written = profile_cart_fields(cart, updated_ms)  # the real profile writer's formatting
    return {**written.fields, written.guard_field: str(written.guard_ms)}


def profile(**fields: str) -> dict[str, str]:
    """A profile that lets everything through: an address, the cart of ``CART`` as it was when it fired."""
    return {"email": "ann@example.com", **cart_fields([product("p1", 10.0, 2)], NOON), **fields}


def verdict(trigger: Trigger = CART, *, suppressed: bool = False, sent: Iterable[int] = (), **kw: Any) -> Verdict:
    fields = kw.pop("fields", profile())
    return decide(trigger, fields, suppressed, list(sent), kw.pop("now", NOW), kw.pop("policy", POLICY))


# --- the policy ------------------------------------------------------------------------------------------------------


def test_policy_defaults():
    policy = GuardrailPolicy()

    assert (policy.holdout_percent, policy.experiment, policy.variants) == (10.0, "default", (("A", 50), ("B", 50)))
    assert (policy.frequency_cap, policy.frequency_window_ms) == (2, DAY)
    assert policy.priorities == {"cart_abandonment": 30, "high_intent": 20, "browse_abandonment": 10}
    assert (policy.quiet_start, policy.quiet_end, policy.default_timezone) == ("21:00", "08:00", "UTC")
    assert policy.max_trigger_age_ms == 3 * DAY


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"holdout_percent": -1}, "holdout_percent"),
        ({"holdout_percent": 100.5}, "holdout_percent"),
        ({"holdout_percent": float("nan")}, "holdout_percent"),
        ({"holdout_percent": "10"}, "holdout_percent"),
        ({"experiment": ""}, "experiment"),
        ({"experiment": "a|b"}, "experiment"),
        ({"variants": ()}, "variants"),
        ({"variants": (("A", 0), ("B", 0))}, "variants"),
        ({"variants": (("A", -1), ("B", 2))}, "variants"),
        ({"variants": (("A", 1), ("A", 1))}, "variants"),
        ({"variants": (("", 1),)}, "variants"),
        ({"variants": (("A", "50"),)}, "variants"),
        ({"variants": ("AB",)}, "variants"),
        ({"variants": 5}, "variants"),
        ({"frequency_cap": 0}, "frequency_cap"),
        ({"frequency_cap": 1.5}, "frequency_cap"),
        ({"frequency_window_ms": 0}, "frequency_window_ms"),
        ({"priorities": {"cart_abandonment": 1}}, "priorities"),
        ({"priorities": {**GuardrailPolicy().priorities, "win_back": 5}}, "priorities"),
        ({"priorities": {**GuardrailPolicy().priorities, "high_intent": "20"}}, "priorities"),
        ({"quiet_start": "9:00"}, "quiet_start"),
        ({"quiet_start": "24:00"}, "quiet_start"),
        ({"quiet_end": "08:60"}, "quiet_end"),
        ({"quiet_end": 8}, "quiet_end"),
        ({"default_timezone": "Mars/Olympus_Mons"}, "default_timezone"),
        ({"default_timezone": "Europe"}, "default_timezone"),
        ({"default_timezone": ""}, "default_timezone"),
        ({"max_trigger_age_ms": 0}, "max_trigger_age_ms"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(settings, field):
    with pytest.raises(ValueError, match=f"GuardrailPolicy.{field} must be"):
        GuardrailPolicy(**settings)


def test_policy_copies_config_containers_and_stays_hashable():
    priorities = {"cart_abandonment": 3, "high_intent": 2, "browse_abandonment": 1}
    policy = GuardrailPolicy(variants=[["A", 1], ["B", 3]], priorities=priorities)
    priorities["cart_abandonment"] = 0

    assert policy.variants == (("A", 1), ("B", 3))
    assert GuardrailPolicy(variants={"A": 50.0, "B": 50.0}).variants == (("A", 50.0), ("B", 50.0))  # as in the YAML
    assert policy.priorities["cart_abandonment"] == 3
    assert hash(policy) == hash(GuardrailPolicy(variants=(("A", 1), ("B", 3)), priorities=dict(policy.priorities)))


# --- holdout and variants --------------------------------------------------------------------------------------------


def test_holdout_is_the_documented_hash():
    def bucket(person_id: str) -> int:
        digest = hashlib.sha256(f"holdout|default|{person_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % 10_000

    assert all(in_holdout(pid, GuardrailPolicy()) == (bucket(pid) < 1000) for pid in IDS[:2000])
    assert bucket("ann") == 385  # pinned: a change of formula would reshuffle every running experiment


def test_holdout_takes_about_the_configured_share():
    assert 900 <= sum(in_holdout(pid, GuardrailPolicy()) for pid in IDS) <= 1100  # 10% +- 1%
    assert 2300 <= sum(in_holdout(pid, GuardrailPolicy(holdout_percent=25)) for pid in IDS) <= 2700


def test_holdout_extremes():
    assert not any(in_holdout(pid, GuardrailPolicy(holdout_percent=0)) for pid in IDS[:1000])
    assert all(in_holdout(pid, GuardrailPolicy(holdout_percent=100)) for pid in IDS[:1000])


def test_holdout_is_stable_and_a_new_experiment_reshuffles_it():
    policy, other = GuardrailPolicy(), GuardrailPolicy(experiment="spring")
    held = {pid for pid in IDS if in_holdout(pid, policy)}

    assert held == {pid for pid in IDS if in_holdout(pid, GuardrailPolicy())}
    assert 50 <= len(held & {pid for pid in IDS if in_holdout(pid, other)}) <= 150  # independent: 10% of 10%


def test_variants_split_about_evenly_by_default_and_are_stable():
    counts = Counter(assign_variant(pid, GuardrailPolicy()) for pid in IDS)

    assert set(counts) == {"A", "B"}
    assert 4800 <= counts["A"] <= 5200
    assert assign_variant("ann", GuardrailPolicy()) == "B"  # pinned, like the holdout bucket
    assert [assign_variant(pid, GuardrailPolicy()) for pid in IDS[:100]] == [
        assign_variant(pid, GuardrailPolicy()) for pid in IDS[:100]
    ]


def test_variants_follow_the_weights_and_never_pick_a_zero_weight():
    policy = GuardrailPolicy(variants=(("A", 0.7), ("off", 0), ("B", 0.2), ("C", 0.1)))
    counts = Counter(assign_variant(pid, policy) for pid in IDS)

    assert "off" not in counts
    assert 6800 <= counts["A"] <= 7200
    assert 1800 <= counts["B"] <= 2200
    assert 850 <= counts["C"] <= 1150


def test_a_single_variant_gets_everyone():
    assert {assign_variant(pid, GuardrailPolicy(variants=(("only", 1),))) for pid in IDS[:500]} == {"only"}


def test_variant_and_holdout_are_independent():
    policy = GuardrailPolicy()
    held = Counter(assign_variant(pid, policy) for pid in IDS if in_holdout(pid, policy))

    assert 400 <= held["A"] <= 600
    assert 400 <= held["B"] <= 600


# --- still valid? ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, None),  # no profile: nothing contradicts the trigger
        (cart_fields([product("p1", 10.0, 2)], NOON), None),  # the cart it fired for
        (cart_fields([], NOON + MINUTE), "cart_empty"),  # bought or emptied since
        (cart_fields([], NOON), "cart_empty"),
        ({"cart": "[]"}, "cart_empty"),  # a bare empty list, no time: still empty
        ({"cart": '{"items": []}', "cart_updated_ms": ""}, "cart_empty"),
        (cart_fields([], NOON - MINUTE), None),  # an empty snapshot older than this cart says nothing about it
        (cart_fields([product("p1", 10.0, 3)], NOON + MINUTE), "cart_changed"),  # a newer reminder follows
        ({"cart_updated_ms": str(NOON + 1)}, "cart_changed"),
        ({"cart_updated_ms": str(NOON)}, None),
        ({"cart": " "}, None),
    ],
)
def test_a_cart_reminder_still_holds_unless_the_cart_emptied_or_changed(fields, reason):
    assert still_valid(CART, fields) == reason


@pytest.mark.parametrize("trigger", [BROWSE, HIGH_INTENT])
@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, None),
        (cart_fields([product("p9")], NOON - MINUTE), None),  # a cart from before the session
        (cart_fields([product("p9")], NOON), "carted_since"),  # the session's first moment counts
        (cart_fields([product("p9")], NOON + HOUR), "carted_since"),
        (cart_fields([], NOON + HOUR), None),  # carted and bought: the order, not a browse email, follows
        ({"cart": cart_fields([product("p9")], NOON)["cart"]}, None),  # no time: cannot tell when
    ],
)
def test_a_browse_trigger_still_holds_unless_the_person_carted_since(trigger, fields, reason):
    assert still_valid(trigger, fields) == reason


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"cart": "{not json"}, "cart", "not valid JSON"),
        ({"cart": '{"value": 3}'}, "cart", "items array"),
        ({"cart": '"p1"'}, "cart", "items array"),
        ({"cart_updated_ms": "yesterday"}, "cart_updated_ms", "must be an integer, got 'yesterday'"),
    ],
)
def test_an_unreadable_profile_field_is_named(fields, field, reason):
    with pytest.raises(InvalidProfile) as caught:
        still_valid(CART, fields)

    assert caught.value.field == field
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"profile field {field!r}: ")
    assert isinstance(caught.value, ValueError)


# --- quiet hours -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        ("2026-01-01T12:00:00+00:00", "2026-01-01T12:00:00+00:00"),
        ("2026-01-01T20:59:59.999+00:00", "2026-01-01T20:59:59.999+00:00"),
        ("2026-01-01T21:00:00+00:00", "2026-01-02T08:00:00+00:00"),  # the start is quiet
        ("2026-01-01T23:59:59.999+00:00", "2026-01-02T08:00:00+00:00"),
        ("2026-01-02T00:00:00+00:00", "2026-01-02T08:00:00+00:00"),  # past midnight: today's end
        ("2026-01-02T07:59:59.999+00:00", "2026-01-02T08:00:00+00:00"),
        ("2026-01-02T08:00:00+00:00", "2026-01-02T08:00:00+00:00"),  # the end is not
        ("2026-12-31T22:00:00+00:00", "2027-01-01T08:00:00+00:00"),  # across the year
    ],
)
def test_quiet_hours_wrap_midnight(now, allowed):
    assert next_allowed_ms(at(now), "UTC", GuardrailPolicy()) == at(allowed)


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        ("2026-01-01T11:59:00+00:00", "2026-01-01T11:59:00+00:00"),
        ("2026-01-01T12:00:00+00:00", "2026-01-01T14:00:00+00:00"),
        ("2026-01-01T14:00:00+00:00", "2026-01-01T14:00:00+00:00"),
        ("2026-01-01T23:00:00+00:00", "2026-01-01T23:00:00+00:00"),
    ],
)
def test_quiet_hours_within_one_day(now, allowed):
    policy = GuardrailPolicy(quiet_start="12:00", quiet_end="14:00")

    assert next_allowed_ms(at(now), None, policy) == at(allowed)


def test_equal_start_and_end_mean_no_quiet_hours():
    policy = GuardrailPolicy(quiet_start="00:00", quiet_end="00:00")

    assert all(next_allowed_ms(NOON + h * HOUR, "UTC", policy) == NOON + h * HOUR for h in range(24))


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        # Europe/Berlin springs forward on Sunday 2026-03-29, 02:00 CET -> 03:00 CEST
        ("2026-03-28T21:30:00+01:00", "2026-03-29T08:00:00+02:00"),  # a 9.5 hour night on the clock is 8.5 hours
        ("2026-03-29T01:59:00+01:00", "2026-03-29T08:00:00+02:00"),
        ("2026-03-29T03:00:00+02:00", "2026-03-29T08:00:00+02:00"),
        ("2026-03-29T08:00:00+02:00", "2026-03-29T08:00:00+02:00"),
        ("2026-03-29T07:00:00+01:00", "2026-03-29T07:00:00+01:00"),  # 08:00 CEST already: daytime
        # and falls back on Sunday 2026-10-25, 03:00 CEST -> 02:00 CET
        ("2026-10-24T21:30:00+02:00", "2026-10-25T08:00:00+01:00"),
        ("2026-10-25T02:30:00+02:00", "2026-10-25T08:00:00+01:00"),
        ("2026-10-25T02:30:00+01:00", "2026-10-25T08:00:00+01:00"),
        ("2026-10-25T07:30:00+00:00", "2026-10-25T07:30:00+00:00"),  # 08:30 CET
        ("2026-10-25T06:59:00+00:00", "2026-10-25T08:00:00+01:00"),  # 07:59 CET, though 08:59 in summer time
    ],
)
def test_quiet_hours_follow_the_wall_clock_across_dst(now, allowed):
    assert next_allowed_ms(at(now), "Europe/Berlin", GuardrailPolicy()) == at(allowed)


def test_an_end_inside_the_spring_gap_is_the_moment_the_clock_jumps_past_it():
    policy = GuardrailPolicy(quiet_start="21:00", quiet_end="02:30")  # 02:30 does not exist on 2026-03-29

    assert next_allowed_ms(at("2026-03-28T23:00:00+01:00"), "Europe/Berlin", policy) == at("2026-03-29T03:00:00+02:00")


def test_an_end_that_occurs_twice_is_the_next_occurrence():
    policy = GuardrailPolicy(quiet_start="01:00", quiet_end="02:30")  # 02:30 happens twice on 2026-10-25
    first, second = at("2026-10-25T02:30:00+02:00"), at("2026-10-25T02:30:00+01:00")

    assert next_allowed_ms(at("2026-10-25T01:10:00+02:00"), "Europe/Berlin", policy) == first
    assert next_allowed_ms(first, "Europe/Berlin", policy) == first  # daytime, for an hour
    # the clock goes back to 02:00, inside quiet hours again, until 02:30 comes round the second time
    assert next_allowed_ms(at("2026-10-25T02:10:00+01:00"), "Europe/Berlin", policy) == second


def test_the_persons_zone_decides():
    now = at("2026-01-01T19:00:00+00:00")  # 20:00 in Berlin, 04:00 in Tokyo, 14:00 in New York

    assert next_allowed_ms(now, "Europe/Berlin", GuardrailPolicy()) == now
    assert next_allowed_ms(now, "Asia/Tokyo", GuardrailPolicy()) == at("2026-01-02T08:00:00+09:00")
    assert next_allowed_ms(now, "Asia/Kolkata", GuardrailPolicy()) == at("2026-01-02T08:00:00+05:30")
    assert next_allowed_ms(now, "America/New_York", GuardrailPolicy()) == now


@pytest.mark.parametrize(
    "zone", [None, "", "  ", "Mars/Olympus_Mons", "europe/berlin", "Europe", "../etc/passwd", "x" * 300]
)
def test_a_missing_or_unknown_zone_falls_back_to_the_default(zone):
    policy = GuardrailPolicy(default_timezone="Asia/Tokyo")
    now = at("2026-01-01T19:00:00+00:00")

    assert next_allowed_ms(now, zone, policy) == next_allowed_ms(now, "Asia/Tokyo", policy)
    assert next_allowed_ms(now, zone, GuardrailPolicy()) == now  # UTC: 19:00 is daytime


# --- frequency cap ---------------------------------------------------------------------------------------------------


def test_the_cap_allows_sends_below_it():
    assert frequency_decision([], NOW, POLICY) is None
    assert frequency_decision([NOW - HOUR], NOW, POLICY) is None


def test_at_the_cap_the_slot_frees_a_window_after_the_oldest_counted_send():
    sent = [NOW - HOUR, NOW - 3 * HOUR]

    assert frequency_decision(sent, NOW, POLICY) == NOW - 3 * HOUR + DAY


def test_a_send_exactly_one_window_ago_no_longer_counts():
    oldest = NOW - 3 * HOUR
    sent = [oldest, NOW - HOUR]

    assert frequency_decision(sent, oldest + DAY - 1, POLICY) == oldest + DAY
    assert frequency_decision(sent, oldest + DAY, POLICY) is None


def test_a_send_at_this_very_moment_counts():
    assert frequency_decision([NOW, NOW - HOUR], NOW, POLICY) == NOW - HOUR + DAY


def test_old_and_future_sends_are_ignored():
    assert frequency_decision([NOW - DAY, NOW - 2 * DAY, NOW + 1, NOW - HOUR], NOW, POLICY) is None


def test_over_the_cap_the_slot_frees_when_enough_sends_have_aged_out():
    sent = [NOW - MINUTE, NOW - 5 * HOUR, NOW - HOUR, NOW - 2 * HOUR]  # cap lowered after four sends

    assert frequency_decision(sent, NOW, POLICY) == NOW - HOUR + DAY  # then two of the four are left
    assert frequency_decision(sent, NOW, replace(POLICY, frequency_cap=1)) == NOW - MINUTE + DAY
    assert frequency_decision(sent, NOW, replace(POLICY, frequency_cap=5)) is None


def test_the_window_is_configurable():
    policy = replace(POLICY, frequency_cap=1, frequency_window_ms=HOUR)

    assert frequency_decision([NOW - HOUR], NOW, policy) is None
    assert frequency_decision([NOW - HOUR + 1], NOW, policy) == NOW + 1


# --- priorities ------------------------------------------------------------------------------------------------------


def test_the_highest_priority_goes_first():
    assert pick_next([BROWSE, CART, HIGH_INTENT]) is CART
    assert pick_next([BROWSE, HIGH_INTENT]) is HIGH_INTENT
    assert sorted([BROWSE, CART, HIGH_INTENT], key=queue_order) == [CART, HIGH_INTENT, BROWSE]


def test_ties_go_to_the_older_trigger_then_the_smaller_id():
    older = replace(CART, trigger_id="f" * 32, fired_at_ms=CART.fired_at_ms - 1)
    same_time = replace(CART, trigger_id="0" * 32)

    assert pick_next([CART, older]) is older
    assert pick_next([CART, same_time]) is same_time
    assert pick_next([same_time, CART]) is same_time


def test_priorities_come_from_the_policy():
    policy = GuardrailPolicy(priorities={"cart_abandonment": 1, "high_intent": 2, "browse_abandonment": 3})
    browse = parse_trigger(browse_trigger_json("browse_abandonment", "ann", NOON), policy.priorities)
    cart = parse_trigger(cart_trigger_json("ann", NOON), policy.priorities)

    assert pick_next([cart, browse]) is browse


def test_anything_with_priority_time_and_id_can_wait():
    @dataclass(frozen=True)
    class Waiting:
        trigger_id: str
        priority: int
        fired_at_ms: int

    low, high = Waiting("a", 1, 0), Waiting("b", 2, 5)

    assert pick_next([low, high]) is high


def test_nothing_pending_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        pick_next([])


# --- decide: each rule, then their order -----------------------------------------------------------------------------


def test_a_trigger_that_passes_every_check_is_sent():
    assert verdict() == Verdict("send", None, None, assign_variant("ann", POLICY), False)
    assert verdict(BROWSE, fields={"email": "ann@example.com"}).action == "send"


def test_a_trigger_older_than_the_limit_is_stale():
    limit = CART.fired_at_ms + POLICY.max_trigger_age_ms

    assert verdict(now=limit).action == "send"
    assert verdict(now=limit + 1) == Verdict("suppress", "stale")  # never reached the experiment: no variant


def test_holdout_suppresses_but_still_records_the_variant():
    policy = GuardrailPolicy(holdout_percent=100)

    assert verdict(policy=policy) == Verdict("suppress", "holdout", variant=assign_variant("ann", policy), holdout=True)


def test_holdout_with_the_default_share():
    policy = GuardrailPolicy()
    held = next(pid for pid in IDS if in_holdout(pid, policy))
    kept = next(pid for pid in IDS if not in_holdout(pid, policy))

    assert verdict(replace(CART, person_id=held), policy=policy).reason == "holdout"
    assert verdict(replace(CART, person_id=kept), policy=policy).action == "send"


@pytest.mark.parametrize("email", [None, "", "   ", "ann", "ann@", "@example.com", "ann@example", "a n@example.com"])
def test_no_usable_address_is_no_email(email):
    fields = profile()
    if email is None:
        del fields["email"]
    else:
        fields["email"] = email

    assert verdict(fields=fields) == Verdict("suppress", "no_email", variant=assign_variant("ann", POLICY))


@pytest.mark.parametrize("email", ["ann@example.com", "Ann.Lee+shop@mail.example.co.uk", " ann@example.com "])
def test_plausible_addresses_pass(email):
    assert verdict(fields=profile(email=email)).action == "send"


def test_a_suppressed_address_is_unsubscribed():
    assert verdict(suppressed=True).reason == "unsubscribed"


@pytest.mark.parametrize(
    ("trigger", "cart", "reason"),
    [
        (CART, cart_fields([], NOON + HOUR), "cart_empty"),
        (CART, cart_fields([product("p1", 10.0, 1)], NOON + 30 * MINUTE), "cart_changed"),
        (BROWSE, cart_fields([product("p2")], NOON + MINUTE), "carted_since"),
        (HIGH_INTENT, cart_fields([product("p2")], NOON + MINUTE), "carted_since"),
    ],
)
def test_a_trigger_that_no_longer_holds_is_suppressed(trigger, cart, reason):
    assert verdict(trigger, fields={**profile(), **cart}) == Verdict(
        "suppress", reason, variant=assign_variant("ann", POLICY)
    )


def test_the_cap_defers_until_a_slot_frees():
    sent = [NOW - HOUR, NOW - 2 * HOUR]

    assert verdict(sent=sent) == Verdict("defer", "frequency_cap", NOW - 2 * HOUR + DAY, assign_variant("ann", POLICY))


def test_a_slot_that_frees_at_night_waits_for_the_morning():
    sent = [at("2025-12-31T22:00:00+00:00"), at("2026-01-01T10:00:00+00:00")]
    now = at("2026-01-01T14:00:00+00:00")

    result = verdict(sent=sent, now=now)  # the slot frees at 22:00, inside quiet hours

    assert (result.action, result.reason, result.send_after_ms) == (
        "defer",
        "frequency_cap",
        at("2026-01-02T08:00:00Z"),
    )


def test_quiet_hours_in_the_persons_zone_defer_until_they_end():
    now = at("2026-01-01T14:30:00+00:00")  # 23:30 in Tokyo

    result = verdict(fields=profile(timezone="Asia/Tokyo"), now=now)

    assert result == Verdict("defer", "quiet_hours", at("2026-01-02T08:00:00+09:00"), assign_variant("ann", POLICY))
    assert verdict(fields=profile(timezone="Europe/Berlin"), now=now).action == "send"
    assert verdict(fields=profile(timezone="Nowhere/Special"), now=now).action == "send"  # UTC by default


def test_the_first_failing_rule_names_the_reason():
    # Everything fails at first; each repair lets the next rule speak, in the documented order.
    state: dict[str, Any] = {
        "fields": {"timezone": "Asia/Tokyo", **cart_fields([], NOON + HOUR)},  # NOW is 23:00 in Tokyo
        "suppressed": True,
        "sent": [NOW - HOUR, NOW - 2 * HOUR],
        "policy": GuardrailPolicy(holdout_percent=100),
    }
    repairs = [
        ("holdout", lambda: state.update(policy=POLICY)),
        ("no_email", lambda: state["fields"].update(email="ann@example.com")),
        ("unsubscribed", lambda: state.update(suppressed=False)),
        ("cart_empty", lambda: state["fields"].update(cart_fields([product("p1", 10.0, 2)], NOON))),
        ("frequency_cap", lambda: state.update(sent=[])),
        ("quiet_hours", lambda: state["fields"].update(timezone="Europe/Berlin")),
        (None, lambda: None),
    ]
    for reason, repair in repairs:
        result = decide(CART, state["fields"], state["suppressed"], state["sent"], NOW, state["policy"])
        assert (result.reason, result.variant) == (reason, assign_variant("ann", POLICY))
        repair()
    assert result.action == "send"


def test_staleness_comes_before_everything():
    result = decide(CART, {}, True, [NOW] * 5, CART.fired_at_ms + 4 * DAY, GuardrailPolicy(holdout_percent=100))

    assert result == Verdict("suppress", "stale")


def test_an_unreadable_profile_field_is_raised_not_guessed():
    with pytest.raises(InvalidProfile):
        verdict(fields=profile(cart="{"))


# --- verdicts as delivery records ------------------------------------------------------------------------------------


def test_a_deferral_becomes_a_deferred_record():
    result = verdict(sent=[NOW - HOUR, NOW - 2 * HOUR])

    assert result.to_record(CART, decided_at_ms=NOW, attempt=1) == DeliveryRecord(
        trigger_id=CART.trigger_id,
        person_id="ann",
        trigger_type="cart_abandonment",
        template="cart_reminder_1",
        status="deferred",
        reason="frequency_cap",
        decided_at_ms=NOW,
        variant=result.variant,
        attempt=1,
        send_after_ms=NOW - 2 * HOUR + DAY,
    )


def test_a_holdout_becomes_a_suppressed_record_with_its_variant():
    record = verdict(policy=GuardrailPolicy(holdout_percent=100)).to_record(CART, NOW)

    assert (record.status, record.reason, record.holdout, record.variant) == ("suppressed", "holdout", True, "B")


def test_a_send_has_no_record_before_the_provider_answers():
    with pytest.raises(ValueError, match="provider"):
        Verdict("send", variant="A").to_record(CART, NOW)


def test_an_unknown_action_is_refused():
    with pytest.raises(ValueError, match="Verdict.action"):
        Verdict("maybe")


# --- exports ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [udfs.guardrails, udfs.guardrail_policy])
def test_all_covers_every_public_class_and_function(module):
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    }

    assert set(module.__all__) >= public
    assert all(hasattr(module, name) for name in module.__all__)


def test_guardrails_re_exports_the_policy():
    assert udfs.guardrails.GuardrailPolicy is udfs.guardrail_policy.GuardrailPolicy
    assert "GuardrailPolicy" in udfs.guardrails.__all__
