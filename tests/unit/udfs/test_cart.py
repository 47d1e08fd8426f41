"""Cart abandonment step functions: every scenario runs events and timers through apply_event/fire_timer."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import pytest

import udfs.cart
from tests.support.events import (
    BEGINNING,
    DAY,
    HOUR,
    MINUTE,
    as_json,
    cart_viewed,
    checkout_started,
    order_completed,
    page_viewed,
    product,
    product_added,
    product_removed,
)
from udfs.cart import (
    AbandonmentTrigger,
    CartItem,
    CartPolicy,
    CartState,
    Reminder,
    apply_event,
    fire_timer,
    make_trigger_id,
)
from udfs.events import ClickEvent, InvalidEvent, parse_event

T0 = BEGINNING
POLICY = CartPolicy(
    reminders=(Reminder(HOUR, "cart_reminder_1"), Reminder(DAY, "cart_reminder_2")),
    cooldown_ms=0,
    max_reminders=2,
    dedup_window=16,
)


def click(doc: Mapping[str, Any]) -> ClickEvent:
    return parse_event(as_json(doc))


def run(*docs: Mapping[str, Any], state: CartState | None = None, policy: CartPolicy = POLICY) -> CartState | None:
    for doc in docs:
        state = apply_event(state, click(doc), policy).state
    return state


def advance(
    state: CartState | None, until_ms: int, policy: CartPolicy = POLICY, person: str = "ann"
) -> tuple[list[AbandonmentTrigger], CartState | None]:
    """Fire timers the way a watermark moving up to ``until_ms`` would, one pending timer at a time."""
    fired: list[AbandonmentTrigger] = []
    while state is not None and state.next_reminder_ms is not None and state.next_reminder_ms <= until_ms:
        decision = fire_timer(state, person, state.next_reminder_ms, policy)
        fired += decision.triggers
        state = decision.state
    return fired, state


def quantities(state: CartState | None) -> dict[str, int]:
    return {} if state is None else {pid: item.quantity for pid, item in state.items.items()}


# --- building the cart ---------------------------------------------------------------------------------------------


def test_events_in_order_build_the_cart_and_arm_the_first_reminder():
    decision = apply_event(None, click(product_added("ann", T0, product_id="shoe", price=80.0)), POLICY)
    state = run(
        product_added("ann", T0 + 5 * MINUTE, product_id="sock", price=2.5, quantity=2),
        product_added("ann", T0 + 9 * MINUTE, product_id="shoe", price=80.0, message_id="second-shoe"),
        state=decision.state,
    )

    assert decision.cart_changed
    assert quantities(state) == {"shoe": 2, "sock": 2}
    assert state.value == 165.0
    assert state.cart_id == "c1"
    assert state.newest_change_ms == T0 + 9 * MINUTE
    assert state.next_reminder_ms == T0 + 9 * MINUTE + HOUR


def test_arrival_order_does_not_change_the_resulting_cart():
    docs = [
        product_added("ann", T0, product_id="shoe", price=80.0),
        product_added("ann", T0 + 2 * MINUTE, product_id="sock", price=5.0),
        product_added("ann", T0 + 4 * MINUTE, product_id="shoe", price=80.0, message_id="again"),
    ]
    expected = run(*docs)

    for arrival in itertools.permutations(docs):
        state = run(*arrival)
        assert quantities(state) == {"shoe": 2, "sock": 1}
        assert (state.newest_change_ms, state.next_reminder_ms) == (
            expected.newest_change_ms,
            expected.next_reminder_ms,
        )


def test_removing_a_product_that_was_never_added_changes_no_cart_but_is_remembered():
    first = apply_event(None, click(product_removed("ann", T0, product_id="ghost")), POLICY)

    assert not first.cart_changed
    assert quantities(first.state) == {}
    assert [op.product_id for op in first.state.log.ops] == ["ghost"]  # its add may still arrive, out of order
    assert advance(first.state, T0 + 365 * DAY) == ([], None)  # and the hold timer clears it

    state = run(product_added("ann", T0, product_id="shoe"))
    decision = apply_event(state, click(product_removed("ann", T0 + MINUTE, product_id="ghost")), POLICY)

    assert not decision.cart_changed
    assert quantities(decision.state) == {"shoe": 1}
    assert decision.state.next_reminder_ms == T0 + MINUTE + HOUR  # still cart activity, so the debounce restarts


def test_removal_reduces_a_line_or_drops_it():
    state = run(product_added("ann", T0, product_id="sock", quantity=5))

    state = run(product_removed("ann", T0 + MINUTE, product_id="sock", quantity=2), state=state)
    assert quantities(state) == {"sock": 3}

    state = run(product_removed("ann", T0 + 2 * MINUTE, product_id="sock"), state=state)
    assert quantities(state) == {}


def test_product_id_falls_back_to_sku_and_accepts_numbers():
    doc = product_added("ann", T0)
    doc["properties"] = {**doc["properties"], "product_id": None, "sku": 507}

    assert quantities(run(doc)) == {"507": 1}


def test_snapshot_events_replace_the_cart():
    state = run(product_added("ann", T0, product_id="shoe"), product_added("ann", T0 + MINUTE, product_id="hat"))

    state = run(checkout_started("ann", T0 + 2 * MINUTE, products=[product("shoe", quantity=3)]), state=state)

    assert quantities(state) == {"shoe": 3}
    assert state.next_reminder_ms == T0 + 2 * MINUTE + HOUR


def test_snapshot_without_products_changes_nothing():
    state = run(cart_viewed("ann", T0, products=[product("shoe", price=80.0)]))

    decision = apply_event(state, click(cart_viewed("ann", T0 + MINUTE)), POLICY)

    assert not decision.cart_changed
    assert decision.state.log == state.log
    assert decision.state.next_reminder_ms == T0 + HOUR


def test_snapshot_equal_to_the_cart_changes_no_cart_but_restarts_the_debounce():
    state = run(cart_viewed("ann", T0, products=[product("shoe", price=80.0)]))

    decision = apply_event(
        state, click(cart_viewed("ann", T0 + 2 * MINUTE, products=[product("shoe", price=80.0)])), POLICY
    )

    assert not decision.cart_changed
    assert quantities(decision.state) == {"shoe": 1}
    assert decision.state.next_reminder_ms == T0 + 2 * MINUTE + HOUR


def test_a_late_snapshot_becomes_the_base_and_newer_changes_are_reapplied_on_top():
    snapshot = cart_viewed("ann", T0, products=[product("shoe")])
    hat = product_added("ann", T0 + 10 * MINUTE, product_id="hat")

    decision = apply_event(run(hat), click(snapshot), POLICY)

    assert decision.cart_changed
    assert list(decision.state.items.items()) == list(run(snapshot, hat).items.items())  # what in order gives
    assert quantities(decision.state) == {"shoe": 1, "hat": 1}


def test_a_snapshot_older_than_the_newest_snapshot_is_superseded():
    state = run(cart_viewed("ann", T0 + 10 * MINUTE, products=[product("hat")]))

    decision = apply_event(state, click(cart_viewed("ann", T0, products=[product("shoe")])), POLICY)

    assert not decision.cart_changed
    assert quantities(decision.state) == {"hat": 1}


def test_apply_event_does_not_mutate_the_state_it_is_given():
    state = run(product_added("ann", T0, product_id="shoe"))
    before = state.to_dict()

    apply_event(state, click(product_added("ann", T0 + MINUTE, product_id="hat")), POLICY)

    assert state.to_dict() == before


# --- late, stale and duplicate events ------------------------------------------------------------------------------


def test_cart_event_from_before_the_purchase_is_ignored():
    state = run(product_added("ann", T0, product_id="shoe"), order_completed("ann", T0 + 30 * MINUTE))

    decision = apply_event(state, click(product_added("ann", T0 + 10 * MINUTE, product_id="sock")), POLICY)
    fired, final = advance(decision.state, T0 + 30 * DAY)

    assert not decision.cart_changed
    assert quantities(decision.state) == {}
    assert fired == []
    assert final is None


def test_a_purchase_arriving_first_still_makes_the_older_add_stale():
    state = run(order_completed("ann", T0 + 30 * MINUTE), product_added("ann", T0, product_id="shoe"))

    assert quantities(state) == {}
    assert advance(state, T0 + 30 * DAY) == ([], None)


def test_duplicate_message_id_is_counted_once():
    add = product_added("ann", T0, product_id="shoe", quantity=2)
    state = run(add)

    decision = apply_event(state, click(add), POLICY)

    assert decision.state is state
    assert not decision.cart_changed
    assert quantities(decision.state) == {"shoe": 2}


def test_duplicates_beyond_the_dedup_window_are_still_caught_by_the_log():
    policy = replace(POLICY, dedup_window=2)
    first = product_added("ann", T0, product_id="a")
    state = run(
        first, product_added("ann", T0 + 1, product_id="b"), product_added("ann", T0 + 2, product_id="c"), policy=policy
    )
    assert first["messageId"] not in state.recent_message_ids

    pending = apply_event(state, click(first), policy)
    compacted = apply_event(state, click(product_added("ann", T0 + 5, product_id="e")), policy, watermark_ms=T0 + 4)
    folded = apply_event(compacted.state, click(first), policy)

    assert pending.state is state  # still a pending op
    assert [op.items[0].product_id for op in compacted.state.log.ops] == ["e"]  # a, b and c are in the base now
    assert not folded.cart_changed
    assert quantities(folded.state) == {"a": 1, "b": 1, "c": 1, "e": 1}  # at or below the base: superseded


def test_dedup_window_catches_a_resend_whose_timestamp_changed_once_the_original_is_folded():
    original = product_added("ann", T0, product_id="a", message_id="m1")
    resend = product_added("ann", T0 + 5 * MINUTE, product_id="a", message_id="m1")
    later = product_added("ann", T0 + 2 * MINUTE, product_id="b")

    def after_resend(policy: CartPolicy) -> dict[str, int]:
        state = apply_event(run(original, policy=policy), click(later), policy, watermark_ms=T0 + MINUTE).state
        assert state.log.ops[0].message_id != "m1"  # the original is in the base, out of the log's reach
        return quantities(run(resend, state=state, policy=policy))

    assert after_resend(POLICY) == {"a": 1, "b": 1}
    assert after_resend(replace(POLICY, dedup_window=0)) == {"a": 2, "b": 1}  # no window: counted again


def test_non_cart_events_leave_the_state_alone():
    state = run(product_added("ann", T0, product_id="shoe"))

    decision = apply_event(state, click(page_viewed("ann", T0 + MINUTE)), POLICY)

    assert decision.state is state
    assert not decision.cart_changed
    assert apply_event(None, click(page_viewed("ann", T0)), POLICY).state is None


# --- timers --------------------------------------------------------------------------------------------------------


def test_a_change_rearms_the_timer_and_the_old_timer_goes_stale():
    state = run(product_added("ann", T0, product_id="shoe"))
    first_timer = state.next_reminder_ms
    state = run(product_added("ann", T0 + 30 * MINUTE, product_id="hat"), state=state)

    stale = fire_timer(state, "ann", first_timer, POLICY)
    due = fire_timer(state, "ann", T0 + 30 * MINUTE + HOUR, POLICY)

    assert stale.triggers == () and stale.state is state
    assert [t.reminder_index for t in due.triggers] == [1]


def test_full_series_fires_each_reminder_once_then_clears_state():
    state = run(
        product_added("ann", T0, product_id="shoe", price=80.0),
        product_added("ann", T0 + 10 * MINUTE, product_id="sock", price=5.0, quantity=2),
    )
    last_change = T0 + 10 * MINUTE

    fired, final = advance(state, T0 + 365 * DAY)

    assert [(t.reminder_index, t.template, t.fired_at_ms) for t in fired] == [
        (1, "cart_reminder_1", last_change + HOUR),
        (2, "cart_reminder_2", last_change + DAY),
    ]
    first = fired[0]
    assert (first.person_id, first.cart_id, first.currency, first.value) == ("ann", "c1", "USD", 90.0)
    assert first.items == (CartItem("shoe", "Product shoe", 80.0, 1), CartItem("sock", "Product sock", 5.0, 2))
    assert first.last_change_ms == last_change
    assert final is None


def test_a_timer_replayed_after_it_fired_sends_nothing():
    state = run(product_added("ann", T0, product_id="shoe"))
    first = fire_timer(state, "ann", T0 + HOUR, POLICY)

    replayed = fire_timer(first.state, "ann", T0 + HOUR, POLICY)

    assert len(first.triggers) == 1
    assert replayed.triggers == ()
    assert fire_timer(None, "ann", T0 + HOUR, POLICY).triggers == ()


def test_max_reminders_caps_the_series():
    policy = replace(POLICY, max_reminders=1)

    fired, final = advance(run(product_added("ann", T0), policy=policy), T0 + 365 * DAY, policy)

    assert [t.reminder_index for t in fired] == [1]
    assert final is None


def test_purchase_cancels_pending_reminders_and_state_is_cleared():
    state = run(product_added("ann", T0, product_id="shoe"))
    reminder_timer = state.next_reminder_ms

    decision = apply_event(state, click(order_completed("ann", T0 + 30 * MINUTE)), POLICY)

    assert decision.cart_changed
    assert quantities(decision.state) == {}
    assert decision.state.cart_id is None
    assert decision.state.next_reminder_ms == T0 + 30 * MINUTE + 1  # the hold, just after the purchase
    assert fire_timer(decision.state, "ann", reminder_timer, POLICY).triggers == ()
    assert advance(decision.state, T0 + 365 * DAY) == ([], None)


def test_emptying_the_cart_cancels_the_reminder():
    state = run(product_added("ann", T0, product_id="shoe"), product_removed("ann", T0 + MINUTE, product_id="shoe"))

    assert advance(state, T0 + 365 * DAY) == ([], None)


def test_cooldown_delays_a_new_series_but_not_the_rest_of_the_current_one():
    policy = replace(POLICY, cooldown_ms=3 * DAY)
    fired, state = advance(run(product_added("ann", T0, product_id="shoe"), policy=policy), T0 + 2 * DAY, policy)
    assert [t.fired_at_ms for t in fired] == [T0 + HOUR, T0 + DAY]

    state = run(product_added("ann", T0 + 30 * HOUR, product_id="hat"), state=state, policy=policy)
    fired, final = advance(state, T0 + 365 * DAY, policy)

    # the new series waits for the cooldown; its 24h step is already past by then, so it is skipped, not doubled
    assert [(t.reminder_index, t.fired_at_ms) for t in fired] == [(1, T0 + DAY + 3 * DAY)]
    assert final is None


def test_trigger_id_is_deterministic_across_replays():
    docs = [product_added("ann", T0, product_id="shoe"), product_added("ann", T0 + MINUTE, product_id="hat")]

    first_run, _ = advance(run(*docs), T0 + 365 * DAY)
    replay, _ = advance(run(*docs), T0 + 365 * DAY)
    reordered, _ = advance(run(*reversed(docs)), T0 + 365 * DAY)

    expected = hashlib.sha256(f"ann|c1|{T0 + MINUTE}|1".encode()).hexdigest()[:32]
    assert first_run[0].trigger_id == expected == make_trigger_id("ann", "c1", T0 + MINUTE, 1)
    assert first_run[0].trigger_id != first_run[1].trigger_id
    assert [t.to_json() for t in replay] == [t.to_json() for t in first_run]
    assert [t.to_json() for t in reordered] == [t.to_json() for t in first_run]  # items are sorted by product id
    assert [item.product_id for item in reordered[0].items] == ["hat", "shoe"]


def test_trigger_json_is_compact_and_sorted():
    fired, _ = advance(run(product_added("ann", T0, product_id="shoe", price=80.0)), T0 + HOUR)

    raw = fired[0].to_json()
    doc = json.loads(raw)

    assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert doc["trigger_type"] == "cart_abandonment"
    assert doc["items"][0]["product_id"] == "shoe"


# --- invalid events and configuration ------------------------------------------------------------------------------


def _with_props(doc: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {**doc, "properties": {**doc["properties"], **props}}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (_with_props(product_added("ann", T0), product_id=None), "properties.product_id"),
        (_with_props(product_removed("ann", T0), product_id=True), "properties.product_id"),
        (_with_props(cart_viewed("ann", T0), products={"p1": 1}), "properties.products"),
        (checkout_started("ann", T0, products=[product("a"), {"price": 1.0}]), "properties.products[1].product_id"),
        (_with_props(cart_viewed("ann", T0), products=["a"]), "properties.products[0]"),
    ],
)
def test_properties_the_cart_cannot_use_raise_invalid_event_naming_the_field(doc, field):
    """Only what leaves a line nameless; the cart uses other deviations as far as they go (test_cart_items.py)."""
    with pytest.raises(InvalidEvent) as caught:
        apply_event(None, click(doc), POLICY)

    assert caught.value.field == field
    assert str(caught.value).startswith(f"field {field!r}: ")


def test_integral_float_quantities_are_accepted():
    assert quantities(run(_with_props(product_added("ann", T0), quantity=2.0))) == {"p1": 2}


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"reminders": ()}, "at least one"),
        ({"reminders": (Reminder(DAY, "a"), Reminder(HOUR, "b"))}, "strictly increasing"),
        ({"reminders": (Reminder(HOUR, "a"), Reminder(HOUR, "b"))}, "strictly increasing"),
        ({"cooldown_ms": -1}, "cooldown_ms"),
        ({"max_reminders": 0}, "max_reminders"),
        ({"dedup_window": -1}, "dedup_window"),
    ],
)
def test_policy_rejects_unusable_settings(changes, says):
    with pytest.raises(ValueError, match=says):
        replace(POLICY, **changes)


@pytest.mark.parametrize(("delay", "template"), [(0, "t"), (-HOUR, "t"), (HOUR, "")])
def test_reminder_rejects_unusable_settings(delay, template):
    with pytest.raises(ValueError, match="Reminder"):
        Reminder(delay, template)


def test_policy_accepts_a_list_of_reminders_from_config():
    policy = CartPolicy([Reminder(HOUR, "a")], cooldown_ms=0, max_reminders=5, dedup_window=0)

    assert policy.reminders == (Reminder(HOUR, "a"),)
    assert policy.series_length == 1


# --- state serialization -------------------------------------------------------------------------------------------


def test_state_round_trips_through_json():
    state = run(
        cart_viewed("ann", T0 - MINUTE, products=[product("belt")]),
        product_added("ann", T0, product_id="shoe", price=80.0, image_url="https://img/1", url="https://shop/1"),
        product_added("ann", T0 + MINUTE, product_id="sock", price=2.5, quantity=3, currency="EUR"),
        product_removed("ann", T0 + 2 * MINUTE, product_id="hat", quantity=2),
    )
    _, state = advance(state, T0 + 2 * HOUR)
    state = run(product_added("ann", T0 + 3 * HOUR, product_id="cap", currency=None), state=state)
    assert state.log.base.items and state.log.ops and state.last_trigger_ms  # every part of the shape is filled in

    restored = CartState.from_dict(json.loads(json.dumps(state.to_dict())))

    assert restored == state
    assert restored.log.ops == state.log.ops and restored.log.base_key == state.log.base_key
    assert (restored.cart_id, restored.currency) == ("c1", "EUR")
    assert list(restored.items) == ["belt", "shoe", "sock", "cap"]


def test_state_from_an_older_format_takes_defaults_for_missing_keys():
    assert CartState.from_dict({"items": []}) == CartState()


def test_state_from_the_format_before_the_op_log_keeps_its_cart_and_stale_rule():
    old = {
        "cart_id": "c9",
        "items": [{"product_id": "shoe", "name": "Shoe", "price": 80.0, "quantity": 2}],
        "currency": "EUR",
        "last_change_ms": T0 + 40 * MINUTE,
        "reminders_sent": 0,
        "next_reminder_ms": T0 + 40 * MINUTE + HOUR,
        "last_trigger_ms": None,
        "last_order_ms": T0 + 30 * MINUTE,
        "recent_message_ids": ["m-shoe"],
    }

    state = CartState.from_dict(old)
    after = run(
        product_added("ann", T0 + 10 * MINUTE, product_id="stale"),  # before the purchase
        product_added("ann", T0 + 35 * MINUTE, product_id="shoe", message_id="m-shoe"),  # already counted
        product_added("ann", T0 + 50 * MINUTE, product_id="hat", cart_id=None, currency=None),
        state=state,
    )

    assert (state.cart_id, state.currency, quantities(state)) == ("c9", "EUR", {"shoe": 2})
    assert (state.last_change_ms, state.next_reminder_ms) == (T0 + 40 * MINUTE, T0 + 40 * MINUTE + HOUR)
    assert quantities(after) == {"shoe": 2, "hat": 1}
    assert CartState.from_dict(after.to_dict()) == after  # and it is saved in the new shape from then on
    bought = CartState.from_dict({"items": [], "last_change_ms": T0, "last_order_ms": T0 + 30 * MINUTE})
    assert bought.last_change_ms == T0 + 30 * MINUTE  # the hold still covers the purchase, as it did


def _public_names(module: Any) -> Iterable[str]:
    return (
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    )


def test_all_covers_every_public_class_and_function():
    assert set(udfs.cart.__all__) >= set(_public_names(udfs.cart))
    assert all(hasattr(udfs.cart, name) for name in udfs.cart.__all__)
