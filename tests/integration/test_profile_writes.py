"""Profile writes in pipelined batches (connectors/redis.py ``BatchedProfileWrites``) against the real Redis.

The clickstream job queues each record's profile changes and sends them in one round trip per batch: when the
batch is full, when its oldest write is ``linger_ms`` old (checked on the next add, and by the job's timer that
calls ``flush``), or on ``flush``. Nothing is in Redis before its batch goes; everything is after. Each person's
field groups keep their own event-time guard inside a batch, also against a newer write of the same batch, and
triggers in a batch reach the person's history once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from connectors.redis import BatchedProfileWrites, GuardedFields, ProfileStore, ProfileWrite, cart_fields
from tests.support.events import BEGINNING, MINUTE

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


@pytest.fixture
def store(sandbox, run_id: str) -> Iterator[ProfileStore]:
    profiles = ProfileStore(sandbox.redis_url, f"pw-{run_id}:profile:", ttl_ms=HOUR_MS)
    profiles.setup()
    yield profiles
    profiles.close()


def _score(t_ms: int, intent: str) -> GuardedFields:
    return GuardedFields("scored_at_ms", t_ms, {"intent_score": intent})


def _cart(t_ms: int, *products: str) -> GuardedFields:
    items = [{"product_id": p, "quantity": 1} for p in products]
    return cart_fields({"cart_id": "c1", "currency": "USD", "value": float(len(products)), "items": items}, t_ms)


def _cart_products(store: ProfileStore, person: str) -> list[str]:
    raw = store.read(person).get("cart")
    return [item["product_id"] for item in json.loads(raw)["items"]] if raw else []


def test_a_batch_is_sent_when_it_is_full(store):
    batch = BatchedProfileWrites(store, max_records=3, linger_ms=60_000)
    assert batch.add(ProfileWrite("ann", [_score(BEGINNING, "10.00")])) is True  # starts a batch: the caller's timer
    assert batch.add(ProfileWrite("bo", [_score(BEGINNING, "20.00")])) is False
    assert store.read("ann") == {} and store.read("bo") == {}, "written before the batch was full"

    assert batch.add(ProfileWrite("cy", [_score(BEGINNING, "30.00")])) is False  # the third: full, sent
    assert [store.read(p).get("intent_score") for p in ("ann", "bo", "cy")] == ["10.00", "20.00", "30.00"]

    assert batch.add(ProfileWrite("ann", [_score(BEGINNING + MINUTE, "11.00")])) is True  # a new batch
    assert store.read("ann")["intent_score"] == "10.00"
    batch.flush()
    assert store.read("ann")["intent_score"] == "11.00"


def test_a_batch_is_sent_when_its_oldest_write_is_linger_old(store):
    batch = BatchedProfileWrites(store, max_records=100, linger_ms=100)
    assert batch.add(ProfileWrite("ann", [_cart(BEGINNING, "shoe")])) is True
    assert batch.add(ProfileWrite("bo", [_cart(BEGINNING, "hat")])) is False
    assert _cart_products(store, "ann") == []
    time.sleep(0.2)
    # the next add finds the batch old and sends it, itself included
    assert batch.add(ProfileWrite("cy", [_cart(BEGINNING, "bag")])) is False
    assert [_cart_products(store, p) for p in ("ann", "bo", "cy")] == [["shoe"], ["hat"], ["bag"]]


def test_flush_sends_what_is_queued_and_an_empty_flush_sends_nothing(store, redis_client):
    batch = BatchedProfileWrites(store, max_records=100, linger_ms=60_000)
    batch.flush()  # nothing queued: no error, no key
    assert redis_client.keys(f"{store.key_prefix}*") == []
    batch.add(ProfileWrite("ann", [_cart(BEGINNING, "shoe")]))
    assert _cart_products(store, "ann") == []
    batch.flush()  # what the job's processing-time timer does when the linger is over
    assert _cart_products(store, "ann") == ["shoe"]
    assert 0 < redis_client.pttl(store.key("ann")) <= HOUR_MS


def test_one_record_at_a_time_with_a_batch_of_one(store):
    batch = BatchedProfileWrites(store, max_records=1, linger_ms=60_000)
    assert batch.add(ProfileWrite("ann", [_cart(BEGINNING, "shoe")])) is False  # sent at once: no timer needed
    assert _cart_products(store, "ann") == ["shoe"]


def test_guards_hold_per_person_and_per_group_inside_a_batch(store):
    t = BEGINNING
    BatchedProfileWrites(store, 1, 10).add(ProfileWrite("ann", [_cart(t + 10 * MINUTE, "shoe", "sock")]))
    batch = BatchedProfileWrites(store, max_records=100, linger_ms=60_000)
    # ann: an older cart than the stored one (not written) with a score of its own (written); then, in the same
    # batch, a newer score and an older one after it (the older is not written)
    batch.add(ProfileWrite("ann", [_cart(t + 5 * MINUTE, "shoe"), _score(t + 5 * MINUTE, "40.00")]))
    batch.add(ProfileWrite("ann", [_score(t + 20 * MINUTE, "60.00")]))
    batch.add(ProfileWrite("ann", [_score(t + 15 * MINUTE, "50.00")]))
    # bo in the same batch: his own guards, unaffected by ann's newer times; an equal time rewrites (a replay)
    batch.add(ProfileWrite("bo", [_cart(t, "hat")]))
    batch.add(ProfileWrite("bo", [_cart(t, "hat", "cap")]))
    batch.flush()

    ann = store.read("ann")
    assert _cart_products(store, "ann") == ["shoe", "sock"]
    assert int(ann["cart_updated_ms"]) == t + 10 * MINUTE
    assert (ann["intent_score"], int(ann["scored_at_ms"])) == ("60.00", t + 20 * MINUTE)
    assert int(ann["last_seen_ms"]) == t + 20 * MINUTE  # the newest guard of any group
    assert _cart_products(store, "bo") == ["hat", "cap"]
    assert int(store.read("bo")["last_seen_ms"]) == t


def test_triggers_in_a_batch_reach_the_history_once(store):
    trigger = {"trigger_id": "t1", "trigger_type": "cart_abandonment", "template": "r1", "fired_at_ms": BEGINNING}
    later = {"trigger_id": "t2", "trigger_type": "high_intent", "fired_at_ms": BEGINNING + HOUR_MS}
    batch = BatchedProfileWrites(store, max_records=100, linger_ms=60_000)
    batch.add(ProfileWrite("ann", [_cart(BEGINNING, "shoe")], [trigger]))
    batch.add(ProfileWrite("ann", (), [trigger, later]))  # the same trigger again (a replay), and a new one
    assert store.trigger_history("ann") == []
    batch.flush()
    assert [t["trigger_id"] for t in store.trigger_history("ann")] == ["t1", "t2"]
    assert _cart_products(store, "ann") == ["shoe"]
