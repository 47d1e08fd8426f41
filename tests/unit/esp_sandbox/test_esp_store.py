"""The store: every kept message appended to the JSONL file, read back at start, a torn last line survived."""

from __future__ import annotations

import json

from esp_sandbox.records import StoredMessage
from esp_sandbox.store import MessageStore

NOW = 1_767_225_600_000


def _message(n: int, provider: str = "sendgrid", trigger: str = "t1") -> StoredMessage:
    return StoredMessage(
        id=f"id{n}",
        provider=provider,
        received_at_ms=NOW + n,
        provider_message_id=f"p{n}",
        from_email="shop@example.com",
        to=["ann@example.com"],
        subject=f"S{n}",
        html="<p>x</p>",
        metadata={"trigger_id": trigger, "variant": "b"},
        headers={"X-A": "1"},
    )


def test_kept_messages_are_appended_as_json_lines_with_the_lifted_fields(tmp_path):
    store = MessageStore(tmp_path / "esp" / "messages.jsonl")

    store.add([_message(1), _message(2, "mailchimp", "t2")])

    lines = [json.loads(line) for line in (tmp_path / "esp" / "messages.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["id1", "id2"]
    assert lines[1]["trigger_id"] == "t2" and lines[1]["variant"] == "b"
    assert lines[0]["received_at"] == "2026-01-01T00:00:00.001Z"


def test_a_restart_loads_them_back_equal(tmp_path):
    path = tmp_path / "messages.jsonl"
    MessageStore(path).add([_message(1), _message(2)])

    again = MessageStore(path)

    assert again.load() == 2
    assert again.select() == [_message(1), _message(2)] and again.get("id2") == _message(2)


def test_a_line_torn_by_a_crash_is_skipped(tmp_path):
    path = tmp_path / "messages.jsonl"
    MessageStore(path).add([_message(1)])
    with open(path, "a") as out:
        out.write('{"id": "id2", "provider": "sendg')

    store = MessageStore(path)

    assert store.load() == 1 and [m.id for m in store.select()] == ["id1"]


def test_select_and_clear(tmp_path):
    path = tmp_path / "messages.jsonl"
    store = MessageStore(path)
    store.add([_message(1), _message(2, "webhook", "t2")])

    assert [m.id for m in store.select(lambda m: m.trigger_id == "t2")] == ["id2"]
    assert store.clear() == 2 and len(store) == 0 and path.read_text() == ""
    assert MessageStore(path).load() == 0


def test_without_a_path_it_keeps_in_memory_only():
    store = MessageStore()
    store.add([_message(1)])

    assert store.load() == 0 and len(store) == 1
