"""The fault queue: what a test may ask for, in order, per endpoint, used up one answer at a time."""

from __future__ import annotations

import pytest

from esp_sandbox.faults import ENDPOINTS, Fault, FaultQueue, FaultSpecError, parse_faults


def test_the_example_of_the_issue_parses():
    endpoint, faults = parse_faults(
        {
            "provider": "sendgrid",
            "responses": [{"status": 429, "retry_after": 2}, {"status": 500}, {"status": 202, "delay_ms": 1500}],
        }
    )

    assert endpoint == "sendgrid"
    assert faults == [Fault(429, retry_after=2), Fault(500), Fault(202, delay_ms=1500)]
    assert [f.is_success for f in faults] == [False, False, True]


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ([], ""),
        ({"provider": "mailgun", "responses": [{"status": 500}]}, "provider"),
        ({"provider": "sendgrid"}, "responses"),
        ({"provider": "sendgrid", "responses": []}, "responses"),
        ({"provider": "sendgrid", "responses": ["500"]}, "responses.0"),
        ({"provider": "sendgrid", "responses": [{"status": "500"}]}, "responses.0.status"),
        ({"provider": "sendgrid", "responses": [{"status": 99}]}, "responses.0.status"),
        ({"provider": "sendgrid", "responses": [{"status": True}]}, "responses.0.status"),
        ({"provider": "sendgrid", "responses": [{"status": 429, "retry_after": -1}]}, "responses.0.retry_after"),
        ({"provider": "sendgrid", "responses": [{"status": 202, "delay_ms": 1.5}]}, "responses.0.delay_ms"),
        ({"provider": "sendgrid", "responses": [{"status": 202, "delay_ms": 10**9}]}, "responses.0.delay_ms"),
        ({"provider": "sendgrid", "responses": [{"status": 500, "accepted": "yes"}]}, "responses.0.accepted"),
        (
            {"provider": "sendgrid", "responses": [{"status": 200, "reject_reason": "spam"}]},
            "responses.0.reject_reason",
        ),
        ({"provider": "sendgrid", "responses": [{"status": 500, "retry": 1}]}, "responses.0.retry"),
    ],
)
def test_a_bad_request_names_its_field(doc, field):
    with pytest.raises(FaultSpecError) as caught:
        parse_faults(doc)

    assert caught.value.field == field


def test_faults_come_out_in_order_per_endpoint_then_the_endpoint_is_normal_again():
    queue = FaultQueue()
    queue.push("sendgrid", [Fault(429), Fault(500)])
    queue.push("mailchimp", [Fault(500)])

    assert queue.next("sendgrid") == Fault(429)
    assert queue.next("webhook") is None
    assert queue.next("sendgrid") == Fault(500)
    assert queue.next("sendgrid") is None
    assert queue.next("mailchimp") == Fault(500)


def test_pending_and_clear():
    queue = FaultQueue()
    queue.push("sendgrid", [Fault(429, retry_after=2), Fault(202, delay_ms=10)])
    queue.push("smtp", [Fault(451)])

    assert set(queue.pending()) == set(ENDPOINTS)
    assert queue.pending()["sendgrid"] == [
        {"status": 429, "retry_after": 2},
        {"status": 202, "delay_ms": 10},
    ]
    assert queue.clear("smtp") == 1 and queue.next("smtp") is None
    assert queue.clear() == 2 and queue.next("sendgrid") is None
