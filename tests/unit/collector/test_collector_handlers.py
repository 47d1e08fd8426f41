"""The collector's request → response logic, against the in-memory twins of Kafka and Redis."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from collector.auth import WriteKeys
from collector.clients.memory import MemoryProducer, MemoryStore
from collector.handlers import Collector, HandlerOptions
from collector.metrics import CollectorMetrics
from collector.schema import MAX_MARKED
from collector.wire import IngestRequest, IngestResponse
from tests.support.events import BEGINNING, HOUR, SECOND, iso
from udfs.events import parse_event

NOW = BEGINNING + 10 * HOUR
KEY = "demo-write-key"
EVENTS = "clickstream.events"
DLQ = "clickstream.dlq"


class Harness:
    """A collector wired to twins, with a clock the test moves."""

    def __init__(self, **options: Any) -> None:
        self.now = NOW
        self.producer = MemoryProducer()
        self.store = MemoryStore(clock=lambda: self.now)
        self.metrics = CollectorMetrics()
        self.collector = Collector(
            HandlerOptions(**options), WriteKeys([KEY.encode()]), self.producer, self.store, self.store, self.metrics
        )

    def post(
        self, call: str, doc: Any, *, key: str | None = KEY, raw: bytes | None = None, too_large: bool = False
    ) -> IngestResponse:
        body = raw if raw is not None else json.dumps(doc).encode()
        auth = None if key is None else "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        request = IngestRequest(call=call, body=body, authorization=auth, received_at_ms=self.now, too_large=too_large)
        return asyncio.run(self.collector.handle(request))

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(record.value) for record in self.producer.on(EVENTS)]

    def keys(self) -> list[bytes | None]:
        return [record.key for record in self.producer.on(EVENTS)]

    def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(record.value) for record in self.producer.on(DLQ)]

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.value(name, **labels)


def track(message_id: str = "m1", user: str | None = "ann", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "track",
        "event": "Product Added",
        "messageId": message_id,
        "timestamp": iso(NOW - 5 * SECOND),
        "properties": {"product_id": "p1", "price": 10.0, "quantity": 1, "cart_id": "c1", "currency": "USD"},
    }
    if user is not None:
        doc["userId"] = user
    doc.update(extra)
    return doc


@pytest.fixture
def harness() -> Harness:
    return Harness()


def test_a_track_call_is_acknowledged_like_segment_and_lands_keyed_by_person(harness):
    answer = harness.post("track", track())

    assert (answer.status, answer.body) == (200, {"success": True})
    [record] = harness.events()
    assert record["personId"] == "ann" and harness.keys() == [b"ann"]
    assert record["receivedAt"] == iso(NOW) and record["timestamp"] == iso(NOW - 5 * SECOND)
    assert parse_event(json.dumps(record)).person_id == "ann"
    assert harness.metric("cartpulse_collector_events_accepted_total", type="track") == 1


def test_the_endpoint_sets_the_type_and_the_write_key_never_reaches_kafka(harness):
    answer = harness.post("page", {"anonymousId": "a1", "name": "Home", "writeKey": KEY, "type": "track"}, key=None)

    assert answer.status == 200
    [record] = harness.events()
    assert record["type"] == "page" and "writeKey" not in record and record["personId"] == "a1"


def test_clock_skew_is_corrected_and_the_original_kept(harness):
    # The device's clock is 3 hours behind: it stamped the event 3 h + 10 s before "now", and sent it 3 h before.
    doc = track(timestamp=iso(NOW - 3 * HOUR - 10 * SECOND), sentAt=iso(NOW - 3 * HOUR))

    harness.post("track", doc)

    [record] = harness.events()
    assert record["timestamp"] == iso(NOW - 10 * SECOND)
    assert record["originalTimestamp"] == doc["timestamp"] and record["sentAt"] == doc["sentAt"]


def test_a_batch_takes_the_valid_events_and_reports_the_others_one_by_one(harness):
    batch = [
        track("m1"),
        {**track("m2"), "userId": {"id": 1}},
        track("m3", properties={"product_id": "p1", "price": -1, "quantity": 1}),  # deviates: accepted, marked
        track("m4", user=None),
        "not an event",
        {**track("m6"), "type": "page", "name": "Home"},
    ]

    answer = harness.post("batch", {"batch": batch, "sentAt": iso(NOW)})

    assert answer.status == 400
    assert answer.body["accepted"] == 3 and answer.body["success"] is False
    assert [(e["index"], e["field"], e["code"]) for e in answer.body["errors"]] == [
        (1, "userId", "invalid_field"),
        (3, "userId", "missing_identity"),
        (4, None, "invalid_field"),
    ]
    assert answer.body["errors"][0]["messageId"] == "m2"
    assert [r["messageId"] for r in harness.events()] == ["m1", "m3", "m6"]
    assert harness.events()[1]["context"]["cartpulse"]["spec_deviations"] == [
        {"field": "properties.price", "reason": "invalid_value"}
    ]
    dead = harness.dead_letters()
    assert [d["field"] for d in dead] == ["userId", "userId", None]
    assert all(d["stage"] == "collector" and d["payload"] and d["failed_at"] and d["error"] for d in dead)
    assert harness.metric("cartpulse_collector_events_rejected_total", reason="missing_identity") == 1


def test_a_batch_applies_its_sent_at_and_context_to_every_event(harness):
    skewed = {**track("m1", timestamp=iso(NOW - HOUR - SECOND)), "context": {"ip": "1.2.3.4"}}
    body = {"batch": [skewed], "sentAt": iso(NOW - HOUR), "context": {"library": {"name": "sdk"}, "ip": "0.0.0.0"}}

    harness.post("batch", body)

    [record] = harness.events()
    assert record["timestamp"] == iso(NOW - SECOND)
    assert record["context"] == {"library": {"name": "sdk"}, "ip": "1.2.3.4"}


def test_a_repeated_message_id_is_acknowledged_but_produced_once_and_counted(harness):
    first = harness.post("track", track("m1"))
    again = harness.post("track", track("m1"))
    in_one_batch = harness.post("batch", {"batch": [track("m2"), track("m2")]})

    assert first.status == again.status == in_one_batch.status == 200
    assert [r["messageId"] for r in harness.events()] == ["m1", "m2"]
    assert harness.metric("cartpulse_collector_events_deduplicated_total") == 2


def test_the_dedup_window_ends(harness):
    harness.post("track", track("m1"))
    harness.now += HandlerOptions().dedup_window_ms + 1

    harness.post("track", track("m1", timestamp=iso(harness.now)))

    assert len(harness.events()) == 2


def test_events_without_a_message_id_get_one_and_are_never_deduplicated(harness):
    doc = track()
    del doc["messageId"]

    harness.post("track", doc)
    harness.post("track", doc)

    ids = [r["messageId"] for r in harness.events()]
    assert len(set(ids)) == 2 and all(i.startswith("cartpulse-") for i in ids)


def test_an_anonymous_cart_follows_the_person_after_identify(harness):
    anon = {"anonymousId": "anon-1"}
    harness.post("track", {**track("m1", user=None), **anon})
    harness.post("identify", {"userId": "ann", "anonymousId": "anon-1", "messageId": "m2", "traits": {"x": 1}})
    harness.post("track", {**track("m3", user=None), **anon})

    assert [(r["messageId"], r["personId"]) for r in harness.events()] == [
        ("m1", "anon-1"),
        ("m2", "ann"),
        ("m3", "ann"),
    ]
    assert harness.keys() == [b"anon-1", b"ann", b"ann"]


def test_an_alias_links_the_previous_id_and_a_link_in_the_same_batch_applies_at_once(harness):
    batch = [
        {"type": "alias", "previousId": "anon-9", "userId": "bob", "messageId": "m1"},
        {**track("m2", user=None), "anonymousId": "anon-9"},
    ]

    harness.post("batch", {"batch": batch})

    assert [r["personId"] for r in harness.events()] == ["bob", "bob"]


@pytest.mark.parametrize(
    ("key", "body_key"),
    [("wrong-key", None), (None, None), (None, "wrong-key"), (None, 42)],
)
def test_unknown_or_missing_write_keys_get_401_and_nothing_is_written(harness, key, body_key):
    doc = track() if body_key is None else {**track(), "writeKey": body_key}

    answer = harness.post("track", doc, key=key)

    assert answer.status == 401 and answer.body["code"] == "unauthorized"
    assert "WWW-Authenticate" in answer.headers
    assert harness.producer.records == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"userId": NaN}', "NaN is not allowed"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_a_body_that_is_not_a_json_object_gets_400_and_a_dead_letter(harness, raw, reason):
    answer = harness.post("track", None, raw=raw)

    assert answer.status == 400 and reason in answer.body["message"]
    [dead] = harness.dead_letters()
    assert dead["reason"] == "malformed_json" and dead["stage"] == "collector"


def test_an_oversize_body_gets_413(harness):
    answer = harness.post("track", None, raw=b'{"userId": "' + b"x" * 100, too_large=True)

    assert answer.status == 413 and "32768 bytes" in answer.body["message"]
    assert harness.dead_letters()[0]["reason"] == "too_large"
    assert harness.metric("cartpulse_collector_events_rejected_total", reason="too_large") == 1


def test_an_oversize_event_in_a_batch_is_rejected_alone(harness):
    big = track("m2", properties={"product_id": "p", "price": 1, "blob": "x" * 40_000})

    answer = harness.post("batch", {"batch": [track("m1"), big]})

    assert answer.status == 400
    assert [(e["index"], e["code"]) for e in answer.body["errors"]] == [(1, "too_large")]
    assert [r["messageId"] for r in harness.events()] == ["m1"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"timestamp": "yesterday"}, "timestamp", "not an ISO-8601"),
        ({"timestamp": 1767225600}, "timestamp", "string"),
        ({"timestamp": "2026-01-01T10:00:00"}, "timestamp", "no time zone"),
        ({"timestamp": iso(NOW + 25 * HOUR)}, "timestamp", "in the future"),
        ({"timestamp": "1970-01-01T00:00:00Z"}, "timestamp", "days old"),
        ({"timestamp": iso(NOW), "sentAt": "soon"}, "sentAt", "not an ISO-8601"),
        ({"timestamp": None, "originalTimestamp": "2199-01-01T00:00:00Z"}, "originalTimestamp", "in the future"),
    ],
)
def test_absurd_timestamps_are_rejected_with_the_field_named(harness, change, field, words):
    answer = harness.post("track", {**track(), **change})

    assert answer.status == 400
    [error] = answer.body["errors"]
    assert error["field"] == field and error["code"] == "bad_timestamp" and words in error["reason"]


@pytest.mark.parametrize(
    ("call", "doc", "field"),
    [
        ("track", {"userId": "ann"}, "event"),
        ("track", {"userId": "ann", "event": 5}, "event"),
        ("track", {"userId": True, "event": "x"}, "userId"),
        ("track", {"userId": "ann", "event": "x", "properties": []}, "properties"),
        ("track", {"userId": "ann", "event": "x", "context": "web"}, "context"),
        ("identify", {"userId": "ann", "traits": "vip"}, "traits"),
        ("page", {"anonymousId": "a", "name": 3}, "name"),
        ("alias", {"userId": "ann"}, "previousId"),
        ("alias", {"anonymousId": "a", "previousId": "b"}, "userId"),
        ("group", {"userId": "ann"}, "groupId"),
        ("track", {"userId": "ann", "event": "x", "messageId": 7}, "messageId"),
        ("track", {"userId": "a" * 300, "event": "x"}, "userId"),
        ("batch", {"batch": {}}, "batch"),
        ("batch", {"batch": []}, "batch"),
        ("batch", {"batch": [{"userId": "ann"}]}, "type"),
        ("batch", {"batch": [{"userId": "ann", "type": "purchase"}]}, "type"),
    ],
)
def test_wrong_types_and_missing_fields_are_named(harness, call, doc, field):
    answer = harness.post(call, doc)

    assert answer.status == 400
    assert answer.body["errors"][0]["field"] == field
    assert harness.events() == []


def test_numeric_ids_become_strings_as_segment_does(harness):
    harness.post("track", {**track(), "userId": 42})

    [record] = harness.events()
    assert record["userId"] == "42" and record["personId"] == "42"


def test_kafka_down_answers_503_and_the_retry_is_produced_exactly_once(harness):
    harness.producer.down = True
    refused = harness.post("batch", {"batch": [track("m1"), track("m2")]})

    assert refused.status == 503 and refused.headers["Retry-After"] == "5"
    assert harness.metric("cartpulse_collector_requests_unavailable_total", backend="kafka") == 1

    harness.producer.down = False
    accepted = harness.post("batch", {"batch": [track("m1"), track("m2")]})

    assert accepted.status == 200
    assert [r["messageId"] for r in harness.events()] == ["m1", "m2"]


def test_deliveries_that_fail_after_hand_over_release_their_claims(harness):
    harness.producer.fail_deliveries = True
    assert harness.post("track", track("m1")).status == 503

    harness.producer.fail_deliveries = False
    assert harness.post("track", track("m1")).status == 200
    assert len(harness.events()) == 1


def test_a_delivery_that_outlives_its_request_keeps_its_claim_until_it_settles():
    harness = Harness(produce_timeout_s=0.01)
    harness.producer.hold = True

    async def scenario() -> tuple[int, int, int]:
        def post(doc: dict[str, Any]) -> Any:
            auth = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
            return harness.collector.handle(IngestRequest("track", json.dumps(doc).encode(), auth, NOW))

        slow = await post(track("m1"))
        while_in_flight = await post(track("m1"))
        harness.producer.hold = False
        harness.producer.release_held(deliver=True)
        await harness.collector.drain()
        after = await post(track("m1"))
        return slow.status, while_in_flight.status, after.status

    assert asyncio.run(scenario()) == (503, 503, 200)
    assert len(harness.events()) == 1
    assert harness.metric("cartpulse_collector_requests_unavailable_total", backend="in_flight") == 1


def test_redis_down_answers_503_and_produces_nothing(harness):
    harness.store.down = True

    answer = harness.post("track", track())

    assert answer.status == 503 and "redis" in answer.body["message"]
    assert harness.events() == []


def test_invalid_events_are_answered_even_when_kafka_is_down(harness):
    harness.producer.down = True

    answer = harness.post("track", {"userId": "ann"})

    assert answer.status == 400
    assert harness.metric("cartpulse_collector_dead_letter_failures_total") == 1


def test_produce_latency_is_observed(harness):
    harness.post("track", track())

    assert harness.metric("cartpulse_collector_produce_latency_seconds_count") == 1


# --- E-commerce events that deviate from Segment's spec: accepted, marked, counted ----------------------------------


def ecommerce(event: str, message_id: str = "e1", **properties: Any) -> dict[str, Any]:
    return {**track(message_id, properties=properties), "event": event}


def deviations(record: dict[str, Any]) -> list[tuple[str, str]]:
    marks = record.get("context", {}).get("cartpulse", {}).get("spec_deviations", [])
    return [(mark["field"], mark["reason"]) for mark in marks]


def deviation_count(event: str, field: str, reason: str, harness: Harness) -> float:
    return harness.metric("cartpulse_collector_ecommerce_deviations_total", event=event, field=field, reason=reason)


@pytest.mark.parametrize(
    ("doc", "field", "reason"),
    [
        (ecommerce("Order Completed", total=39.0, currency="USD"), "properties.order_id", "missing"),
        (ecommerce("Order Completed", order_id="o1", revenue="lots"), "properties.revenue", "wrong_type"),
        (ecommerce("Product Added", product_id="p1", quantity=1), "properties.price", "missing"),
        (ecommerce("Product Added", product_id="p1", price="9.99", quantity=1), "properties.price", "wrong_type"),
        (ecommerce("Product Added", product_id="p1", price=-1, quantity=1), "properties.price", "invalid_value"),
        (ecommerce("Product Added", product_id="p1", price=1), "properties.quantity", "missing"),
        (ecommerce("Product Added", product_id="p1", price=1, quantity="2"), "properties.quantity", "wrong_type"),
        (ecommerce("Product Added", product_id="p1", price=1, quantity=0), "properties.quantity", "invalid_value"),
        (ecommerce("Product Added", price=1, quantity=1), "properties.product_id", "missing"),
        (ecommerce("Product Added", product_id=True, price=1, quantity=1), "properties.product_id", "wrong_type"),
        (
            ecommerce("Product Added", product_id="p1", price=1, quantity=1, currency="dollars"),
            "properties.currency",
            "invalid_value",
        ),
        (ecommerce("Product Removed", product_id="p1", quantity=-1), "properties.quantity", "invalid_value"),
        (ecommerce("Product Viewed", name="Boot"), "properties.product_id", "missing"),
        (ecommerce("Cart Viewed", products={}), "properties.products", "wrong_type"),
        (ecommerce("Cart Viewed", products=["p1"]), "properties.products[0]", "wrong_type"),
        (
            ecommerce("Checkout Started", products=[{"product_id": "p1", "quantity": 1}]),
            "properties.products[0].price",
            "missing",
        ),
    ],
)
def test_a_deviating_ecommerce_event_is_accepted_marked_and_counted(harness, doc, field, reason):
    answer = harness.post("track", doc)

    assert (answer.status, answer.body) == (200, {"success": True})
    [record] = harness.events()
    assert deviations(record) == [(field, reason)]
    assert record["properties"] == doc["properties"]  # produced as sent: the mark is beside it, not instead
    metric_field = field.replace("[0]", "[]")
    assert deviation_count(doc["event"], metric_field, reason, harness) == 1
    assert harness.metric("cartpulse_collector_events_accepted_total", type="track") == 1
    assert harness.dead_letters() == []


def test_a_conforming_event_carries_no_mark_and_a_client_cannot_forge_one(harness):
    forged = {**track("m2"), "context": {"cartpulse": {"spec_deviations": [{"field": "x"}], "source": "web"}}}

    harness.post("batch", {"batch": [track("m1"), forged]})

    plain, cleaned = harness.events()
    assert "cartpulse" not in plain.get("context", {})
    assert cleaned["context"]["cartpulse"] == {"source": "web"}
    assert "cartpulse_collector_ecommerce_deviations_total{" not in harness.metrics.exposition().decode()


def test_an_event_counts_once_per_field_and_reason_and_the_marks_are_capped():
    harness = Harness()
    lines = [{"product_id": f"p{n}", "quantity": 1} for n in range(MAX_MARKED + 10)]

    harness.post("track", ecommerce("Cart Viewed", products=lines))

    [record] = harness.events()
    assert len(deviations(record)) == MAX_MARKED
    assert deviations(record)[:2] == [
        ("properties.products[0].price", "missing"),
        ("properties.products[1].price", "missing"),
    ]
    assert deviation_count("Cart Viewed", "properties.products[].price", "missing", harness) == 1


def test_deviating_events_in_a_batch_are_accepted_like_any_other(harness):
    batch = [
        ecommerce("Product Added", "b1", product_id="p1", price="n/a", quantity=1),
        ecommerce("Order Completed", "b2", total=10),
        track("b3"),
    ]

    answer = harness.post("batch", {"batch": batch})

    assert (answer.status, answer.body) == (200, {"success": True})
    assert [(r["messageId"], deviations(r)) for r in harness.events()] == [
        ("b1", [("properties.price", "wrong_type")]),
        ("b2", [("properties.order_id", "missing")]),
        ("b3", []),
    ]


def test_a_deviation_is_counted_once_the_broker_has_the_event_and_not_again_for_a_resend(harness):
    order = ecommerce("Order Completed", "o1", total=10)
    harness.producer.down = True

    assert harness.post("track", order).status == 503
    assert deviation_count("Order Completed", "properties.order_id", "missing", harness) == 0

    harness.producer.down = False
    assert [harness.post("track", order).status for _ in range(2)] == [200, 200]
    assert len(harness.events()) == 1
    assert deviation_count("Order Completed", "properties.order_id", "missing", harness) == 1


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"userId": None}, "userId", "missing_identity"),
        ({"userId": ["ann"]}, "userId", "invalid_field"),
        ({"event": ""}, "event", "invalid_field"),
        ({"event": 7}, "event", "invalid_field"),
        ({"properties": "order"}, "properties", "invalid_field"),
        ({"context": []}, "context", "invalid_field"),
        ({"messageId": 7}, "messageId", "invalid_field"),
        ({"timestamp": "last tuesday"}, "timestamp", "bad_timestamp"),
        ({"timestamp": iso(NOW + 25 * HOUR)}, "timestamp", "bad_timestamp"),
    ],
)
def test_an_ecommerce_event_is_still_refused_when_it_is_unusable(harness, change, field, code):
    doc = {**ecommerce("Order Completed", total=10), **change}  # also deviates: no order_id

    answer = harness.post("track", doc)

    assert answer.status == 400
    [error] = answer.body["errors"]
    assert (error["field"], error["code"]) == (field, code)
    assert harness.events() == []
    assert harness.dead_letters()[0]["reason"] == code
    assert harness.metric("cartpulse_collector_events_rejected_total", reason=code) == 1
    assert "cartpulse_collector_ecommerce_deviations_total{" not in harness.metrics.exposition().decode()


@pytest.mark.parametrize(
    ("call", "key", "too_large", "status"),
    [("track", "wrong-key", False, 401), ("track", None, False, 401), ("track", KEY, True, 413)],
)
def test_an_ecommerce_event_is_still_refused_for_its_key_or_size(harness, call, key, too_large, status):
    answer = harness.post(call, ecommerce("Order Completed", total=10), key=key, too_large=too_large)

    assert answer.status == status
    assert harness.events() == []


def test_an_event_record_is_stamped_with_its_event_time_never_later_than_its_arrival(harness: Harness) -> None:
    """The clickstream job makes its watermarks from the record timestamps (README, "Event time")."""
    harness.post("track", track("on-time"))
    harness.post("track", track("ahead", timestamp=iso(NOW + 2 * HOUR)))  # a client clock ahead, no sentAt
    stamps = {json.loads(r.value)["messageId"]: r.timestamp_ms for r in harness.producer.on(EVENTS)}
    assert stamps == {"on-time": NOW - 5 * SECOND, "ahead": NOW}
