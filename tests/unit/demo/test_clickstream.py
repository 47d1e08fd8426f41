"""The demo's sample clickstream: anonymous carts are the same story, told before the login."""

from __future__ import annotations

from demo.clickstream import anonymous_id_of, fills_cart_anonymously, sample_clickstream, shoppers

START_MS = 1_767_225_600_000


def test_anonymous_carts_change_who_the_events_name_not_how_many_or_what():
    plain = sample_clickstream(16, "t", START_MS)
    anonymous = sample_clickstream(16, "t", START_MS, anonymous_carts=True)
    assert len(anonymous) == len(plain)
    assert sorted(e.get("event", e["type"]) for e in anonymous) == sorted(e.get("event", e["type"]) for e in plain)
    assert [e["timestamp"] for e in anonymous] == sorted(e["timestamp"] for e in anonymous)


def test_a_shopper_who_fills_the_cart_anonymously_logs_in_last_from_the_same_browser():
    people = shoppers(16, "t", START_MS)
    chosen = [s.person_id for n, s in enumerate(people) if fills_cart_anonymously(s, n)]
    assert chosen == ["t-shopper-0000", "t-shopper-0008"]
    browser = anonymous_id_of("t-shopper-0000")
    own = [e for e in sample_clickstream(16, "t", START_MS, anonymous_carts=True) if browser == e.get("anonymousId")]
    *before, login = own
    assert [e.get("event", e["type"]) for e in before] == ["page", "Product Added", "Product Added"]
    assert all("userId" not in e and e["personId"] == browser for e in before)
    assert login["type"] == "identify" and login["userId"] == "t-shopper-0000" and login["traits"]["email"]
