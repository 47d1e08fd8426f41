"""The collector as the sandbox runs it (``make up``), through the real broker and Redis.

Every test tags its ids with ``run_id`` and reads back only its own records, so the shared topics can hold
anything else.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.collector import collector_url
from tests.support.collector import CollectorClient, Record, read_records
from udfs.events import parse_event

pytestmark = pytest.mark.integration

EVENTS = "clickstream.events"
DLQ = "clickstream.dlq"


@pytest.fixture(scope="module")
def client(sandbox) -> Iterator[CollectorClient]:
    collector = CollectorClient(collector_url(sandbox))
    assert collector.get("/health").json()["kafka"] == "connected"
    yield collector
    collector.close()


def _now(offset_s: float = 0.0) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=offset_s)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _added(run_id: str, n: int, person: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Added",
        "userId": person,
        "messageId": f"{run_id}-m{n}",
        "timestamp": _now(-1),
        "properties": {"product_id": f"p{n}", "price": 10.0 + n, "quantity": 1, "cart_id": f"cart-{run_id}"},
        **extra,
    }


def _mine(sandbox, topic: str, run_id: str, expect: int | None = None) -> list[Record]:
    return read_records(sandbox.kafka_bootstrap, topic, lambda v: run_id in json.dumps(v), expect=expect)


def test_a_single_call_lands_once_keyed_by_person_with_segments_fields(sandbox, client, run_id):
    person = f"ann-{run_id}"
    body = {**_added(run_id, 1, person), "timestamp": _now(-3601), "sentAt": _now(-3600), "context": {"ip": "1"}}

    answer = client.post("track", body)

    assert answer.status_code == 200 and answer.json() == {"success": True}
    [record] = _mine(sandbox, EVENTS, run_id)
    assert record.key == person == record.value["personId"]
    value = record.value
    assert value["originalTimestamp"] == body["timestamp"] and value["sentAt"] == body["sentAt"]
    skew = datetime.fromisoformat(value["receivedAt"]) - datetime.fromisoformat(value["timestamp"])
    assert timedelta(seconds=0.5) < skew < timedelta(seconds=2)  # corrected: 1 s before receipt, not 1 h
    assert parse_event(json.dumps(value)).person_id == person


def test_every_call_type_and_short_form_is_accepted(sandbox, client, run_id):
    person = f"bo-{run_id}"
    calls = {
        "identify": {"traits": {"email": "bo@example.com"}},
        "i": {},
        "page": {"name": "Home", "properties": {"url": "https://shop.example/"}},
        "p": {"name": "Cart"},
        "screen": {"name": "Basket"},
        "t": {"event": "Signed Up"},
        "alias": {"previousId": f"old-{run_id}"},
        "group": {"groupId": "g1"},
    }
    for n, (call, extra) in enumerate(calls.items()):
        answer = client.post(call, {"userId": person, "messageId": f"{run_id}-{n}", **extra})
        assert answer.status_code == 200, (call, answer.text)

    records = _mine(sandbox, EVENTS, run_id)
    assert sorted(r.value["type"] for r in records) == sorted(
        ["identify", "identify", "page", "page", "screen", "track", "alias", "group"]
    )
    assert {r.key for r in records} == {person}


def test_a_batch_keeps_one_persons_events_in_order_on_one_partition(sandbox, client, run_id):
    people = [f"cy-{run_id}", f"di-{run_id}"]
    batch = [_added(run_id, n, people[n % 2]) for n in range(8)]

    answer = client.post("batch", {"batch": batch, "sentAt": _now()})

    assert answer.status_code == 200
    records = _mine(sandbox, EVENTS, run_id)
    assert len(records) == 8
    for person in people:
        own = [r for r in records if r.key == person]
        assert len({r.partition for r in own}) == 1
        assert [r.value["messageId"] for r in own] == [b["messageId"] for b in batch if b["userId"] == person]


def test_a_partial_batch_accepts_the_valid_and_dead_letters_the_rest(sandbox, client, run_id):
    person = f"ed-{run_id}"
    batch = [
        _added(run_id, 1, person),
        {**_added(run_id, 2, person), "timestamp": "last tuesday"},  # unusable (a price "free" is only marked)
        {**_added(run_id, 3, person), "userId": None},
        _added(run_id, 4, person),
    ]

    answer = client.post("batch", {"batch": batch})

    assert answer.status_code == 400
    body = answer.json()
    assert body["accepted"] == 2
    assert [(e["index"], e["messageId"], e["field"]) for e in body["errors"]] == [
        (1, f"{run_id}-m2", "timestamp"),
        (2, f"{run_id}-m3", "userId"),
    ]
    assert [r.value["messageId"] for r in _mine(sandbox, EVENTS, run_id)] == [f"{run_id}-m1", f"{run_id}-m4"]
    dead = {r.value["field"]: r.value for r in _mine(sandbox, DLQ, run_id)}
    assert set(dead) == {"timestamp", "userId"}
    assert dead["timestamp"]["stage"] == "collector" and dead["timestamp"]["reason"] == "bad_timestamp"
    assert json.loads(dead["userId"]["payload"])["messageId"] == f"{run_id}-m3"


def test_a_duplicate_is_acknowledged_dropped_and_counted(sandbox, client, run_id):
    event = _added(run_id, 1, f"fa-{run_id}")
    before = client.metric("cartpulse_collector_events_deduplicated_total")

    answers = [client.post("track", event).status_code for _ in range(3)]
    in_batch = client.post("batch", {"batch": [event, event]}).status_code

    assert answers == [200, 200, 200] and in_batch == 200
    assert len(_mine(sandbox, EVENTS, run_id)) == 1
    assert client.metric("cartpulse_collector_events_deduplicated_total") - before == 4


def test_an_anonymous_cart_follows_the_person_after_login(sandbox, client, run_id):
    anon, user = f"anon-{run_id}", f"gu-{run_id}"
    before = {**_added(run_id, 1, user), "userId": None, "anonymousId": anon}
    login = {"userId": user, "anonymousId": anon, "messageId": f"{run_id}-login", "traits": {"plan": "gold"}}
    after = {**_added(run_id, 2, user), "userId": None, "anonymousId": anon}

    assert client.post("track", before).status_code == 200
    assert client.post("identify", login).status_code == 200
    assert client.post("track", after).status_code == 200

    records = {r.value["messageId"]: r for r in _mine(sandbox, EVENTS, run_id)}
    assert records[f"{run_id}-m1"].key == anon
    assert records[f"{run_id}-login"].key == user
    assert records[f"{run_id}-m2"].key == user and records[f"{run_id}-m2"].value["personId"] == user
    assert records[f"{run_id}-login"].partition == records[f"{run_id}-m2"].partition


def test_gzip_bodies_are_read(sandbox, client, run_id):
    body = gzip.compress(json.dumps({"batch": [_added(run_id, 1, f"ha-{run_id}")]}).encode())

    answer = client.post("batch", raw=body, headers={"Content-Encoding": "gzip"})

    assert answer.status_code == 200 and len(_mine(sandbox, EVENTS, run_id)) == 1


def _bad_inputs(run_id: str) -> list[tuple[str, str, Any, int, str | None]]:
    """(case, call, body, status, field): one of each bad-input class the issue names. An e-commerce property of
    the wrong type (a price "1") is no longer among them: Segment accepts it, so the collector marks and counts it
    (tests/unit/collector/test_collector_handlers.py)."""
    person = f"ix-{run_id}"
    ok = _added(run_id, 0, person)
    return [
        ("malformed json", "track", b'{"userId": "' + run_id.encode() + b'", ', 400, None),
        ("not an object", "track", json.dumps([run_id]).encode(), 400, None),
        ("wrong type: userId", "track", {**ok, "userId": {"id": run_id}}, 400, "userId"),
        ("wrong type: properties", "track", {**ok, "properties": [run_id]}, 400, "properties"),
        ("missing event name", "track", {"userId": person, "messageId": f"{run_id}-x"}, 400, "event"),
        ("missing identity", "track", {**ok, "userId": None}, 400, "userId"),
        ("future timestamp", "track", {**ok, "timestamp": _now(3 * 86_400)}, 400, "timestamp"),
        ("ancient timestamp", "track", {**ok, "timestamp": "1970-01-01T00:00:00Z"}, 400, "timestamp"),
        ("unparseable timestamp", "track", {**ok, "timestamp": "last tuesday"}, 400, "timestamp"),
        ("oversize call", "track", {**ok, "context": {"blob": "x" * 40_000}}, 413, None),
        ("oversize batch", "batch", {"batch": [ok] * 3, "pad": "x" * 520_000, "id": run_id}, 413, None),
        ("batch not an array", "batch", {"batch": run_id}, 400, "batch"),
    ]


def test_every_bad_input_class_is_answered_named_and_dead_lettered(sandbox, client, run_id):
    cases = _bad_inputs(run_id)
    for case, call, body, status, field in cases:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = client.post(call, raw=raw)
        assert answer.status_code == status, (case, answer.text)
        error = answer.json()["errors"][0]
        assert error["field"] == field and error["reason"], case

    assert client.get("/health").status_code == 200  # still serving
    assert _mine(sandbox, EVENTS, run_id) == []
    assert len(_mine(sandbox, DLQ, run_id)) == len(cases)


def test_unknown_and_missing_write_keys_get_401(sandbox, client, run_id):
    event = _added(run_id, 1, f"ja-{run_id}")

    assert client.post("track", event, write_key="not-a-key").status_code == 401
    assert client.post("track", event, write_key=None).status_code == 401
    assert client.post("track", {**event, "writeKey": "not-a-key"}, write_key=None).status_code == 401
    assert client.post("track", {**event, "writeKey": "demo-write-key"}, write_key=None).status_code == 200
    assert len(_mine(sandbox, EVENTS, run_id)) == 1


def test_metrics_count_what_happened(client, run_id):
    text = client.get("/metrics").text

    for name in (
        "cartpulse_collector_events_accepted_total",
        "cartpulse_collector_events_rejected_total",
        "cartpulse_collector_events_deduplicated_total",
        "cartpulse_collector_produce_latency_seconds_bucket",
    ):
        assert name in text
