"""SendGrid's Email Activity lookup: the documented query syntax, SendGrid's answer shape, processed → delivered."""

from __future__ import annotations

import pytest

from esp_sandbox.records import StoredMessage
from esp_sandbox.sendgrid_activity import ActivityQueryError, Condition, parse_query, search
from esp_sandbox.wire import Incoming

NOW = 1_767_225_600_000


def _message(n: int, trigger: str, at_ms: int = NOW - 60_000, to: str = "ann@example.com") -> StoredMessage:
    return StoredMessage(
        id=f"id{n}",
        provider="sendgrid",
        received_at_ms=at_ms,
        provider_message_id=f"XMSG{n}.0",
        request_id=f"XMSG{n}",
        from_email="shop@example.com",
        to=[to],
        subject=f"Subject {n}",
        metadata={"trigger_id": trigger},
    )


MESSAGES = [_message(1, "t1"), _message(2, "t2", to="bo@example.com"), _message(3, "t1", at_ms=NOW - 1_000)]


def _search(query: str = "", limit: str | None = None, delivered_after_ms: int = 0):
    params = {"query": query} if query else {}
    if limit is not None:
        params["limit"] = limit
    incoming = Incoming(headers={}, body=b"", received_at_ms=NOW, query=params)
    return search(incoming, lambda: MESSAGES, delivered_after_ms)


def test_the_query_syntax_of_the_docs():
    assert parse_query("unique_args['trigger_id']=\"t1\"") == [Condition("unique_args.trigger_id", "=", "t1")]
    assert parse_query('(to_email="a@b.co") AND (subject="Hi there")') == [
        Condition("to_email", "=", "a@b.co"),
        Condition("subject", "=", "Hi there"),
    ]
    assert parse_query("msg_id LIKE 'XMSG1%'") == [Condition("msg_id", "LIKE", "XMSG1%")]
    assert parse_query("") == []


@pytest.mark.parametrize("query", ['trigger_id="t1"', "unique_args['t']=t1", 'subject LIKE "x%"', 'a="1" OR b="2"'])
def test_what_the_sandbox_cannot_run_is_refused_with_what_it_can(query):
    with pytest.raises(ActivityQueryError):
        parse_query(query)


def test_a_lookup_by_unique_arg_finds_every_email_of_that_trigger_newest_first():
    answer = _search("unique_args['trigger_id']=\"t1\"")

    assert answer.status == 200
    rows = answer.json()["messages"]
    assert [row["msg_id"] for row in rows] == ["XMSG3.0", "XMSG1.0"]
    assert set(rows[0]) == {
        "from_email", "msg_id", "subject", "to_email", "status", "opens_count", "clicks_count", "last_event_time"
    }  # fmt: skip
    assert rows[0]["status"] == "delivered" and rows[0]["last_event_time"] == "2025-12-31T23:59:59Z"


def test_a_message_is_processed_until_the_configured_delay_has_passed():
    rows = _search(delivered_after_ms=30_000).json()["messages"]

    assert {row["msg_id"]: row["status"] for row in rows} == {
        "XMSG3.0": "processed",
        "XMSG2.0": "delivered",
        "XMSG1.0": "delivered",
    }
    assert [r["msg_id"] for r in _search('status="processed"', delivered_after_ms=30_000).json()["messages"]] == [
        "XMSG3.0"
    ]


def test_by_x_message_id_prefix_and_by_recipient():
    assert [r["msg_id"] for r in _search("msg_id LIKE 'XMSG2%'").json()["messages"]] == ["XMSG2.0"]
    assert [r["to_email"] for r in _search('to_email="bo@example.com"').json()["messages"]] == ["bo@example.com"]
    assert _search("unique_args['trigger_id']=\"nope\"").json() == {"messages": []}


def test_limit_defaults_to_10_and_is_checked():
    assert len(_search(limit="1").json()["messages"]) == 1
    for bad in ("0", "1001", "ten"):
        answer = _search(limit=bad)
        assert answer.status == 400 and answer.json()["errors"][0]["field"] == "limit"
    assert _search("nonsense").json()["errors"][0]["field"] == "query"
