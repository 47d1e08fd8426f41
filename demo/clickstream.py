"""A deterministic sample clickstream in Segment's format: every field derives from the shopper's number.

Shoppers cycle through four stories, so the demo and the benchmarks know what should come out:
``abandons`` (adds to cart, leaves), ``buys`` (adds, then completes the order), ``changes`` (adds,
removes one item later, leaves), ``browses`` (views one product three times, never adds it).

With ``anonymous_carts``, every other ``abandons`` shopper fills the cart before logging in, as the collector
forwards it (only the browser's ``anonymousId``), and logs in before leaving: the reminder must still reach
the account. With ``returning_buyers``, every other ``buys`` shopper leaves the cart and comes back to buy it
the next day: the first reminder was owed meanwhile, the second is not. The benchmarks leave both off, so
their workload stays what BENCHMARKS.md measured.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CATALOG",
    "STORIES",
    "Shopper",
    "anonymous_id_of",
    "bad_records",
    "email_of",
    "fills_cart_anonymously",
    "iso",
    "returns_to_buy",
    "sample_clickstream",
    "shoppers",
]

MINUTE = 60_000
#: when a returning buyer comes back: after the first reminder (1 h), before the second (24 h)
RETURNS_AFTER_MS = 20 * 60 * MINUTE
STORIES = ("abandons", "buys", "changes", "browses")
CATALOG = [
    {"product_id": "sku-boot", "name": "Trail Boot", "price": 129.0, "category": "shoes"},
    {"product_id": "sku-sock", "name": "Wool Socks", "price": 14.5, "category": "apparel"},
    {"product_id": "sku-pack", "name": "Day Pack 22L", "price": 89.0, "category": "bags"},
    {"product_id": "sku-lamp", "name": "Head Lamp", "price": 39.9, "category": "gear"},
    {"product_id": "sku-flask", "name": "Steel Flask", "price": 24.0, "category": "gear"},
]


@dataclass(frozen=True)
class Shopper:
    person_id: str
    story: str
    start_ms: int


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _product(n: int) -> dict[str, Any]:
    return CATALOG[n % len(CATALOG)]


def _message_id(run_tag: str, person_id: str, step: int) -> str:
    return str(uuid.UUID(hashlib.sha256(f"{run_tag}|{person_id}|{step}".encode()).hexdigest()[:32]))


def shoppers(count: int, run_tag: str, start_ms: int) -> list[Shopper]:
    """``count`` shoppers, each starting a couple of minutes after the previous one."""
    return [
        Shopper(
            person_id=f"{run_tag}-shopper-{n:04d}", story=STORIES[n % len(STORIES)], start_ms=start_ms + n * 2 * MINUTE
        )
        for n in range(count)
    ]


def _track(shopper: Shopper, run_tag: str, step: int, t_ms: int, event: str, properties: dict[str, Any]) -> dict:
    return {
        "type": "track",
        "event": event,
        "userId": shopper.person_id,
        "messageId": _message_id(run_tag, shopper.person_id, step),
        "timestamp": iso(t_ms),
        "properties": properties,
        "context": {"library": {"name": "cartpulse-demo", "version": "1"}},
    }


def anonymous_id_of(person_id: str) -> str:
    return f"browser-{person_id}"


def fills_cart_anonymously(shopper: Shopper, n: int) -> bool:
    """Every other ``abandons`` shopper (numbers 0, 8, 16, ...) when the sample has anonymous carts."""
    return shopper.story == "abandons" and n % (2 * len(STORIES)) == 0


def _before_login(doc: dict[str, Any], shopper: Shopper) -> dict[str, Any]:
    """The event as the collector forwards it before login: no userId, the browser's id as the person."""
    browser = anonymous_id_of(shopper.person_id)
    anonymous = {**doc, "anonymousId": browser, "personId": browser}
    del anonymous["userId"]
    return anonymous


def _line(product: dict[str, Any], quantity: int, cart_id: str) -> dict[str, Any]:
    return {
        "product_id": product["product_id"],
        "name": product["name"],
        "price": product["price"],
        "quantity": quantity,
        "currency": "USD",
        "cart_id": cart_id,
        "image_url": f"https://shop.example/img/{product['product_id']}.jpg",
        "url": f"https://shop.example/p/{product['product_id']}",
    }


#: where the demo's shoppers live: quiet hours are kept in each one's own time zone
TIMEZONES = ("America/New_York", "Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles", "Australia/Sydney", "UTC")
FIRST_NAMES = ("Ann", "Bo", "Chiara", "Dev", "Emeka", "Fumiko", "Gus", "Hana")


def email_of(person_id: str) -> str:
    return f"{person_id}@shop.example"


def _identify(shopper: Shopper, n: int, run_tag: str, t_ms: int) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": shopper.person_id,
        "messageId": _message_id(run_tag, shopper.person_id, -1),
        "timestamp": iso(t_ms),
        "traits": {
            "email": email_of(shopper.person_id),
            "first_name": FIRST_NAMES[n % len(FIRST_NAMES)],
            "timezone": TIMEZONES[n % len(TIMEZONES)],
        },
    }


def _anonymous_cart(shopper: Shopper, n: int, run_tag: str) -> Iterator[dict[str, Any]]:
    """The ``abandons`` story before login: the same events, then the login (identify) links the browser."""
    _, *story = _story(shopper, n, run_tag)  # its own login comes last
    yield from (_before_login(event, shopper) for event in story)
    login = _identify(shopper, n, run_tag, shopper.start_ms + 4 * MINUTE)
    yield {**login, "anonymousId": anonymous_id_of(shopper.person_id), "personId": shopper.person_id}


def returns_to_buy(shopper: Shopper, n: int) -> bool:
    """Every other ``buys`` shopper (numbers 1, 9, 17, ...) when the sample has returning buyers."""
    return shopper.story == "buys" and n % (2 * len(STORIES)) == 1


def events_of(
    shopper: Shopper, n: int, run_tag: str, anonymous_carts: bool = False, returning_buyers: bool = False
) -> Iterator[dict[str, Any]]:
    """The events of one shopper's story, in event-time order; a shopper first logs in (identify), unless
    ``anonymous_carts`` makes this one fill the cart first (:func:`fills_cart_anonymously`)."""
    if anonymous_carts and fills_cart_anonymously(shopper, n):
        return _anonymous_cart(shopper, n, run_tag)
    return _story(shopper, n, run_tag, returning_buyers)


def _story(shopper: Shopper, n: int, run_tag: str, returning_buyers: bool = False) -> Iterator[dict[str, Any]]:
    t = shopper.start_ms
    cart_id = f"cart-{shopper.person_id}"
    first, second = _product(n), _product(n + 2)
    yield _identify(shopper, n, run_tag, t - MINUTE)
    yield {
        "type": "page",
        "name": "Product",
        "userId": shopper.person_id,
        "messageId": _message_id(run_tag, shopper.person_id, 0),
        "timestamp": iso(t),
        "properties": {"path": f"/p/{first['product_id']}", "category": first["category"]},
    }
    if shopper.story == "browses":  # keeps coming back to one product, never adds it: browse abandonment
        for step in range(1, 4):
            viewed = {**_line(first, 1, cart_id), "category": first["category"]}
            yield _track(shopper, run_tag, step, t + step * MINUTE, "Product Viewed", viewed)
        return
    yield _track(shopper, run_tag, 1, t + MINUTE, "Product Added", _line(first, 1, cart_id))
    yield _track(shopper, run_tag, 2, t + 3 * MINUTE, "Product Added", _line(second, 2, cart_id))
    if shopper.story == "buys":
        yield _track(
            shopper,
            run_tag,
            3,
            t + (RETURNS_AFTER_MS if returning_buyers and returns_to_buy(shopper, n) else 9 * MINUTE),
            "Order Completed",
            {
                "order_id": f"order-{shopper.person_id}",
                "revenue": first["price"] + 2 * second["price"],
                "currency": "USD",
                "products": [_line(first, 1, cart_id), _line(second, 2, cart_id)],
            },
        )
    elif shopper.story == "changes":
        yield _track(shopper, run_tag, 3, t + 7 * MINUTE, "Product Removed", _line(second, 2, cart_id))


def sample_clickstream(
    count: int, run_tag: str, start_ms: int, anonymous_carts: bool = False, returning_buyers: bool = False
) -> list[dict[str, Any]]:
    """All shoppers' events, ordered by event time as a site would send them."""
    people = shoppers(count, run_tag, start_ms)
    events = [e for n, s in enumerate(people) for e in events_of(s, n, run_tag, anonymous_carts, returning_buyers)]
    return sorted(events, key=lambda e: e["timestamp"])


def bad_records(run_tag: str, t_ms: int) -> list[bytes]:
    """What a dead-letter topic is for: broken JSON, no identity, a nonsense timestamp."""
    no_identity = {"type": "track", "event": "Product Added", "messageId": f"{run_tag}-bad-1", "timestamp": iso(t_ms)}
    bad_time = {
        "type": "track",
        "event": "Product Added",
        "userId": f"{run_tag}-x",
        "messageId": f"{run_tag}-bad-2",
        "timestamp": "last tuesday",
    }
    return [
        b'{"type": "track", "event": "Product Added", ',
        json.dumps(no_identity).encode(),
        json.dumps(bad_time).encode(),
    ]
