"""The outbox view models: what the list and the message page show (templates only format these)."""

from __future__ import annotations

from esp_sandbox.outbox import OutboxRenderer, list_view, message_view
from esp_sandbox.records import StoredMessage

NOW = 1_767_225_600_000


def _message(n: int, provider: str, **extra) -> StoredMessage:
    return StoredMessage(
        id=f"id{n}",
        provider=provider,
        received_at_ms=NOW + n,
        provider_message_id=f"p{n}",
        from_email="shop@example.com",
        to=["ann@example.com"],
        subject=f"S{n}",
        **extra,
    )


def test_the_list_is_newest_first_with_trigger_and_variant():
    messages = [
        _message(1, "sendgrid", metadata={"trigger_id": "t1", "variant": "b"}),
        _message(2, "smtp", cc=["c@x.io"]),
    ]

    view = list_view(messages)

    assert [row["id"] for row in view["rows"]] == ["id2", "id1"]
    assert view["rows"][1] == {
        "id": "id1",
        "received_at": "2026-01-01T00:00:00.001Z",
        "provider": "sendgrid",
        "to": "ann@example.com",
        "subject": "S1",
        "trigger_id": "t1",
        "variant": "b",
        "state": "sent",
    }
    assert view["rows"][0]["to"] == "ann@example.com, c@x.io"
    assert [row["id"] for row in list_view(messages, "smtp")["rows"]] == ["id2"]


def test_the_message_page_shows_only_what_is_there():
    message = _message(
        1,
        "mailchimp",
        from_name="Shop",
        html="<p>x</p>",
        headers={"b-header": "2", "A-Header": "1"},
        metadata={"trigger_id": "t1"},
        state="rejected",
        reject_reason="hard-bounce",
    )

    view = message_view(message)

    envelope = dict(view["envelope"])
    assert envelope["From"] == "Shop <shop@example.com>" and "Cc" not in envelope
    assert envelope["State"] == "rejected (hard-bounce)" and envelope["Trigger id"] == "t1"
    assert view["headers"] == [("A-Header", "1"), ("b-header", "2")]
    assert view["metadata"] == [("trigger_id", '"t1"')]
    assert view["html"] == "<p>x</p>" and view["text"] is None


def test_templates_render_with_strict_undefined():
    html = OutboxRenderer().render("outbox.html", view=list_view([]))

    assert "No messages yet." in html
