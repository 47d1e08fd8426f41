"""The cart abandonment job on the real broker, real Redis and a PyFlink local cluster."""

from __future__ import annotations

import json

import pytest

from jobs.cart_abandonment import policy_from
from jobs.config import CartAbandonmentConfig
from tests.support.events import BEGINNING, HOUR, MINUTE, anonymous, as_json, login, order_completed, product_added
from tests.support.jobs import bounded_cart_config, run_cart_job
from udfs.cart import apply_event
from udfs.events import parse_event

pytestmark = pytest.mark.integration


def _config(run_id: str) -> CartAbandonmentConfig:
    topics = {"events": f"events-{run_id}", "dead_letter": f"dlq-{run_id}", "triggers": f"triggers-{run_id}"}
    return bounded_cart_config(f"cart-test-{run_id}", topics)


def _run(cfg: CartAbandonmentConfig) -> None:
    run_cart_job(cfg, {"parallelism.default": 2})


def test_carts_become_reminders_profiles_and_dead_letters(kafka, redis_client, run_id):
    cfg = _config(run_id)
    kafka.create_topics(cfg.topics.events, cfg.topics.dead_letter, cfg.topics.triggers)
    t0 = BEGINNING
    events = [
        # ann abandons a cart that she changed twice: the timer follows her last change
        product_added("ann", t0, product_id="shoe", price=80.0),
        product_added("ann", t0 + 10 * MINUTE, product_id="sock", price=5.0, quantity=2),
        # bob buys before the first reminder is due: nothing fires
        product_added("bob", t0, product_id="hat", price=20.0),
        order_completed("bob", t0 + 30 * MINUTE),
        # cy's add arrives out of order (20 s, within event_time.max_out_of_orderness), after a newer one
        product_added("cy", t0 + 5 * MINUTE, product_id="bag", price=50.0),
        product_added("cy", t0 + 5 * MINUTE - 20_000, product_id="pen", price=1.5),
    ]
    # dee fills a cart before logging in; at login it becomes hers, and the browser's copy sends nothing.
    # Keyed alike, so one partition holds them in this order: the job holds the browser's cart, then the login.
    dee = [
        anonymous(product_added("x", t0 + MINUTE, product_id="cap", price=12.0), "browser-dee"),
        login("dee", t0 + 20 * MINUTE, "browser-dee"),
    ]
    # Each partition gets its events in event-time order (bar cy's pair), as a collector sends them, so no
    # event is behind the watermark whenever Flink emits one; ann's second add is sent twice.
    timeline = [
        (events[0], "ann"),
        (events[2], "bob"),
        (dee[0], "browser-dee"),
        (events[4], "cy"),
        (events[5], "cy"),
        (events[1], "ann"),
        (events[1], "ann"),
        (dee[1], "browser-dee"),
        (events[3], "bob"),
    ]
    for doc, key in timeline:
        kafka.produce(cfg.topics.events, [as_json(doc)], key=key)
    broken = [b"{not json", as_json({**events[0], "userId": None, "anonymousId": None, "messageId": "x"})]
    kafka.produce(cfg.topics.events, broken)

    _run(cfg)

    triggers = kafka.read_json(cfg.topics.triggers)
    fired = sorted((t["person_id"], t["reminder_index"], t["fired_at_ms"]) for t in triggers)
    assert fired == [
        ("ann", 1, t0 + 10 * MINUTE + HOUR),
        ("ann", 2, t0 + 10 * MINUTE + 24 * HOUR),
        ("cy", 1, t0 + 5 * MINUTE + HOUR),
        ("cy", 2, t0 + 5 * MINUTE + 24 * HOUR),
        ("dee", 1, t0 + 20 * MINUTE + HOUR),  # the browser's cart joined hers at the login: counted from it
        ("dee", 2, t0 + 20 * MINUTE + 24 * HOUR),
    ]
    ann_first = next(t for t in triggers if t["person_id"] == "ann" and t["reminder_index"] == 1)
    assert ann_first["template"] == "cart_reminder_1"
    assert ann_first["value"] == 90.0
    assert sorted(item["product_id"] for item in ann_first["items"]) == ["shoe", "sock"]
    assert len({t["trigger_id"] for t in triggers}) == 6
    dee_first = next(t for t in triggers if t["person_id"] == "dee" and t["reminder_index"] == 1)
    assert [(i["product_id"], i["price"]) for i in dee_first["items"]] == [("cap", 12.0)]

    dead = kafka.read_json(cfg.topics.dead_letter)
    assert len(dead) == 2
    assert all(d["stage"] == f"{cfg.job_name}.parse" and d["error"] for d in dead)
    assert any(d["payload"] == "{not json" for d in dead)

    # The profiles hold what the udfs compute for the same events, in any order.
    prefix = cfg.redis.key_prefix
    policy = policy_from(cfg)
    for person in ("ann", "cy"):
        state = None
        for event in (e for e in events if e.get("userId") == person):
            state = apply_event(state, parse_event(as_json(event)), policy).state
        stored = json.loads(redis_client.hget(f"{prefix}{person}", "cart"))
        assert stored["value"] == state.value
        assert {i["product_id"]: i["quantity"] for i in stored["items"]} == {
            pid: item.quantity for pid, item in state.items.items()
        }
    ann = redis_client.hgetall(f"{prefix}ann")
    assert json.loads(ann["cart"])["value"] == 90.0
    assert int(ann["cart_updated_ms"]) == t0 + 10 * MINUTE
    bob = redis_client.hgetall(f"{prefix}bob")
    # bought: an empty cart, or none written at all if the job saw the order first (both mean "no cart")
    assert json.loads(bob.get("cart", '{"items": []}'))["items"] == []
    cy = redis_client.hgetall(f"{prefix}cy")
    assert sorted(i["product_id"] for i in json.loads(cy["cart"])["items"]) == ["bag", "pen"]
    assert redis_client.pttl(f"{prefix}ann") > 0
    dee = redis_client.hgetall(f"{prefix}dee")
    assert [i["product_id"] for i in json.loads(dee["cart"])["items"]] == ["cap"]
    # the browser's own profile: an emptied cart, or none if the login was seen before the add
    browser = redis_client.hgetall(f"{prefix}browser-dee")
    assert json.loads(browser.get("cart", '{"items": []}'))["items"] == []
