"""The clickstream job on the real broker, real Redis and a PyFlink local cluster.

One bounded run of the shipped job (``build()`` in this process, the real Kafka source and sinks, parallelism 2
over a 2-partition topic) reads one history in which shoppers fill carts, browse, log in and identify themselves,
and a few records are broken. One job: cart reminders and browse and high-intent triggers on one triggers topic,
and every part of a person's profile (cart, scores, traits, trigger history) in one Redis hash. The history is
sent once, the job run once, and each test below checks one part of what it wrote.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from jobs.clickstream import policy_from
from jobs.config import ClickstreamConfig
from tests.support.events import (
    BEGINNING,
    HOUR,
    MINUTE,
    anonymous,
    as_json,
    category_page_viewed,
    event,
    login,
    order_completed,
    product_added,
    product_viewed,
)
from tests.support.jobs import bounded_clickstream_config, run_clickstream_job
from tests.support.kafka import event_time_ms
from udfs.cart import apply_event
from udfs.events import parse_event
from udfs.intent import summarize

pytestmark = pytest.mark.integration

T0 = BEGINNING

# Carts. ann abandons a cart that she changed twice: the timer follows her last change.
ANN = [
    product_added("ann", T0, product_id="shoe", price=80.0),
    product_added("ann", T0 + 10 * MINUTE, product_id="sock", price=5.0, quantity=2),
]
# bob buys before the first reminder is due: nothing fires.
BOB = [product_added("bob", T0, product_id="hat", price=20.0), order_completed("bob", T0 + 30 * MINUTE)]
# cy's second add is 20 s older than her first and arrives after it (within event_time.max_out_of_orderness).
CY = [
    product_added("cy", T0 + 5 * MINUTE, product_id="bag", price=50.0),
    product_added("cy", T0 + 5 * MINUTE - 20_000, product_id="pen", price=1.5),
]
# dee fills a cart before logging in; at login it becomes hers, and the browser's copy sends nothing.
DEE = [
    anonymous(product_added("x", T0 + MINUTE, product_id="cap", price=12.0), "browser-dee"),
    login("dee", T0 + 20 * MINUTE, "browser-dee"),
]
# Sessions. viv views one product three times (browse abandonment), and comes back three hours later.
VIV = [product_viewed("viv", T0 + n * MINUTE, product_id="boot", category="shoes") for n in range(3)]
VIV_NEXT_SESSION = [product_viewed("viv", T0 + 3 * HOUR, product_id="lamp", category="gear")]
# cat browses one category four times: a browse abandonment for the category.
CAT = [category_page_viewed("cat", T0 + n * MINUTE, category="bags") for n in range(4)]
# kit comes back to one product 14 times: intent 100 * (1 - exp(-2 * 13 / 20)) = 72.75 >= 70, high intent too.
KIT = [product_viewed("kit", T0 + n * MINUTE, product_id="kite", category="toys") for n in range(14)]
# buyer views and then adds: no browse trigger (the session has a cart), but the cart's reminders.
BUYER = [
    *(product_viewed("buyer", T0 + n * MINUTE, product_id="boot", category="shoes") for n in range(3)),
    product_added("buyer", T0 + 3 * MINUTE, product_id="boot", price=99.0),
]
# Traits. ida identifies herself (a server-side call: only a userId).
IDA = {
    "type": "identify",
    "userId": "ida",
    "messageId": "identify-ida",
    "timestamp": "2026-01-01T00:00:00.000Z",
    "traits": {"email": "Ida@Example.com", "firstName": "Ida", "timezone": "Europe/Berlin"},
}
# A cart line the cart cannot hold: a Product Added without a product id or sku.
EVE_BAD_LINE = event("track", "eve", T0, name="Product Added", properties={"price": 3.0, "cart_id": "c1"})
BROKEN = [b"{not json", as_json({**ANN[0], "userId": None, "anonymousId": None, "messageId": "x"})]


@dataclass(frozen=True)
class Run:
    cfg: ClickstreamConfig
    triggers: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]


@pytest.fixture(scope="module")
def run(kafka) -> Run:
    """The history sent once (keyed by the person as the collector keys it, each record stamped with its event
    time), and the job run once to the end of it."""
    run_id = uuid.uuid4().hex[:8]
    topics = {"events": f"events-{run_id}", "dead_letter": f"dlq-{run_id}", "triggers": f"triggers-{run_id}"}
    cfg = bounded_clickstream_config(f"clickstream-test-{run_id}", topics)
    kafka.create_topics(cfg.topics.events, create_time=True)
    kafka.create_topics(cfg.topics.dead_letter, cfg.topics.triggers)
    # The carts' partitions get their events in event-time order but for cy's pair, as a collector sends them;
    # ann's second add is sent twice. The browser's add and the login share a key (so a partition) in this order:
    # the login step holds the browser's cart, then moves it.
    carts = [
        (ANN[0], "ann"),
        (BOB[0], "bob"),
        (DEE[0], "browser-dee"),
        (CY[0], "cy"),
        (CY[1], "cy"),
        (ANN[1], "ann"),
        (ANN[1], "ann"),
        (DEE[1], "browser-dee"),
        (BOB[1], "bob"),
        (EVE_BAD_LINE, "eve"),
    ]
    # Sessions in event-time order; viv's first view twice: a duplicate.
    browsing = sorted(VIV + VIV_NEXT_SESSION + CAT + KIT + BUYER, key=lambda e: e["timestamp"])
    browsing.insert(browsing.index(VIV[0]) + 1, VIV[0])
    for doc, key in [*carts, *((doc, doc["userId"]) for doc in [*browsing, IDA])]:
        kafka.produce(cfg.topics.events, [as_json(doc)], key=key, timestamp_ms=event_time_ms(doc))
    kafka.produce(cfg.topics.events, BROKEN)

    run_clickstream_job(cfg, {"parallelism.default": 2})

    return Run(cfg, kafka.read_json(cfg.topics.triggers), kafka.read_json(cfg.topics.dead_letter))


def test_one_job_writes_every_kind_of_trigger_to_one_topic(run):
    kinds = sorted({t["trigger_type"] for t in run.triggers})
    assert kinds == ["browse_abandonment", "cart_abandonment", "high_intent"]
    assert len({t["trigger_id"] for t in run.triggers}) == len(run.triggers), "a trigger id twice"


def test_carts_become_reminders(run):
    reminders = [t for t in run.triggers if t["trigger_type"] == "cart_abandonment"]
    fired = sorted((t["person_id"], t["reminder_index"], t["fired_at_ms"]) for t in reminders)
    assert fired == [
        ("ann", 1, T0 + 10 * MINUTE + HOUR),
        ("ann", 2, T0 + 10 * MINUTE + 24 * HOUR),
        ("buyer", 1, T0 + 3 * MINUTE + HOUR),
        ("buyer", 2, T0 + 3 * MINUTE + 24 * HOUR),
        ("cy", 1, T0 + 5 * MINUTE + HOUR),
        ("cy", 2, T0 + 5 * MINUTE + 24 * HOUR),
        ("dee", 1, T0 + 20 * MINUTE + HOUR),  # the browser's cart joined hers at the login: counted from it
        ("dee", 2, T0 + 20 * MINUTE + 24 * HOUR),
    ]
    ann_first = next(t for t in reminders if t["person_id"] == "ann" and t["reminder_index"] == 1)
    assert ann_first["template"] == "cart_reminder_1"
    assert ann_first["value"] == 90.0
    assert sorted(item["product_id"] for item in ann_first["items"]) == ["shoe", "sock"]
    dee_first = next(t for t in reminders if t["person_id"] == "dee" and t["reminder_index"] == 1)
    assert [(i["product_id"], i["price"]) for i in dee_first["items"]] == [("cap", 12.0)]


def test_sessions_become_browse_and_high_intent_triggers(run):
    browse = [t for t in run.triggers if t["trigger_type"] != "cart_abandonment"]
    fired = sorted((t["person_id"], t["trigger_type"], t["product_id"], t["category"]) for t in browse)
    assert fired == [
        ("cat", "browse_abandonment", None, "bags"),
        ("kit", "browse_abandonment", "kite", None),
        ("kit", "high_intent", "kite", "toys"),
        ("viv", "browse_abandonment", "boot", None),
    ]
    viv_trigger = next(t for t in browse if t["person_id"] == "viv")
    assert viv_trigger["fired_at_ms"] == T0 + 2 * MINUTE + run.cfg.session.gap


def test_bad_records_and_bad_cart_lines_are_dead_lettered_by_stage(run):
    stages = sorted(d["stage"] for d in run.dead_letters)
    job = run.cfg.job_name
    assert stages == [f"{job}.cart", f"{job}.parse", f"{job}.parse"]
    assert all(d["error"] for d in run.dead_letters)
    assert any(d["payload"] == "{not json" for d in run.dead_letters)
    (bad_line,) = [d for d in run.dead_letters if d["stage"] == f"{job}.cart"]
    assert bad_line["field"] == "properties.product_id"
    assert json.loads(bad_line["payload"])["messageId"] == EVE_BAD_LINE["messageId"]


def test_profiles_hold_the_carts(run, redis_client):
    """What the cart step computes for the same events, in any order; an emptied cart after a purchase or a login."""
    prefix = run.cfg.redis.key_prefix
    policy = policy_from(run.cfg).cart
    for person, events in (("ann", ANN), ("cy", CY)):
        state = None
        for e in events:
            state = apply_event(state, parse_event(as_json(e)), policy).state
        stored = json.loads(redis_client.hget(f"{prefix}{person}", "cart"))
        assert stored["value"] == state.value
        assert {i["product_id"]: i["quantity"] for i in stored["items"]} == {
            pid: item.quantity for pid, item in state.items.items()
        }
    ann = redis_client.hgetall(f"{prefix}ann")
    assert json.loads(ann["cart"])["value"] == 90.0
    assert int(ann["cart_updated_ms"]) == T0 + 10 * MINUTE
    assert redis_client.pttl(f"{prefix}ann") > 0
    bob = redis_client.hgetall(f"{prefix}bob")
    # bought: an empty cart, or none written at all if the job saw the order first (both mean "no cart")
    assert json.loads(bob.get("cart", '{"items": []}'))["items"] == []
    cy = redis_client.hgetall(f"{prefix}cy")
    assert sorted(i["product_id"] for i in json.loads(cy["cart"])["items"]) == ["bag", "pen"]
    dee = redis_client.hgetall(f"{prefix}dee")
    assert [i["product_id"] for i in json.loads(dee["cart"])["items"]] == ["cap"]
    # the browser's own profile: an emptied cart, or none if the login was seen before the add
    browser = redis_client.hgetall(f"{prefix}browser-dee")
    assert json.loads(browser.get("cart", '{"items": []}'))["items"] == []


def test_profiles_hold_the_latest_sessions_scores(run, redis_client):
    """What the intent udfs compute for the person's latest session, beside the cart in the same hash."""
    prefix = run.cfg.redis.key_prefix
    policy = policy_from(run.cfg)
    for person, session in (("viv", VIV_NEXT_SESSION), ("cat", CAT), ("kit", KIT), ("buyer", BUYER)):
        expected = summarize(
            person, [parse_event(as_json(e)) for e in session], policy.weights, policy.browse
        ).to_profile_fields()
        stored = redis_client.hgetall(f"{prefix}{person}")
        assert {k: stored[k] for k in expected} == expected, person
    buyer = redis_client.hgetall(f"{prefix}buyer")
    assert float(buyer["intent_score"]) > 0
    assert json.loads(buyer["cart"])["value"] == 99.0  # one hash: the cart and the scores
    assert json.loads(redis_client.hget(f"{prefix}viv", "recently_viewed")) == ["lamp"]
    assert float(redis_client.hget(f"{prefix}kit", "intent_score")) >= run.cfg.browse.high_intent_threshold


def test_profiles_keep_each_persons_trigger_history(run, redis_client):
    prefix = run.cfg.redis.key_prefix
    for person in ("viv", "ann", "kit"):
        history = redis_client.zrange(f"{prefix}{person}:triggers", 0, -1)
        fired = {t["trigger_id"] for t in run.triggers if t["person_id"] == person}
        assert {json.loads(h)["trigger_id"] for h in history} == fired, person
    assert redis_client.exists(f"{prefix}bob:triggers") == 0


def test_identify_traits_reach_the_profile(run, redis_client):
    profile = redis_client.hgetall(f"{run.cfg.redis.key_prefix}ida")
    assert profile["email"] == "ida@example.com"
    assert profile["first_name"] == "Ida"
    assert profile["timezone"] == "Europe/Berlin"
    assert profile["traits_updated_ms"] == str(BEGINNING)
