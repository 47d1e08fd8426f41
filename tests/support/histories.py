"""Seeded multi-day clickstream histories, and what the clickstream job must fire for them, computed in one batch.

The cart reminders come from ``demo/cart_model.py`` (a separately written model of the reminder rule); the
browse-abandonment and high-intent triggers from :func:`session_model`: each person's events sorted, cut where
two neighbours are a session gap or more apart, each session scored once by the pure ``udfs.intent`` functions.
A job that reads the history however its records arrive must fire exactly these, each once.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from demo.cart_model import ModelPolicy, ModelTrigger, expected_triggers
from jobs.clickstream import policy_from
from jobs.config import ClickstreamConfig
from tests.support.events import (
    BEGINNING,
    DAY,
    MINUTE,
    anonymous,
    as_json,
    cart_viewed,
    category_page_viewed,
    login,
    order_completed,
    product,
    product_added,
    product_removed,
    product_viewed,
)
from udfs.events import parse_event
from udfs.intent import session_end_triggers, summarize

__all__ = [
    "SessionTrigger",
    "ModelTrigger",
    "as_model_trigger",
    "cart_policy",
    "assert_the_models_triggers",
    "generated_history",
    "session_model",
    "time_ms",
]

#: (person, trigger type, fired at ms, product id, category)
SessionTrigger = tuple[str, str, int, str | None, str | None]


def generated_history(
    seed: int, run_id: str, shoppers: int = 300, days: int = 3, browsing: bool = False
) -> list[dict[str, Any]]:
    """Seeded shoppers: most fill a cart, some change it over days, some buy, 40 % start in a browser.

    :param browsing: half of them also browse, in sessions of product and category pages: a few views (no
        trigger), three or more of one product or four of a category (browse abandonment), or 14 and more of one
        product (high intent too); a session that also holds a cart add fires none of these.
    """
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    for shopper in range(shoppers):
        user, browser = f"{run_id}-u{shopper}", f"{run_id}-b{shopper}"
        start = BEGINNING + rng.randrange(days * DAY)
        times = sorted(start + rng.randrange(2 * DAY) // MINUTE * MINUTE for _ in range(rng.randint(1, 6)))
        login_at = start + rng.randrange(DAY) if rng.random() < 0.4 else None
        for n, t in enumerate(times):
            mid = f"{user}-{n}"
            pid = rng.choice(["shoe", "hat", "sock", "belt"])
            kind = rng.choices(["add", "remove", "snapshot", "order"], weights=[6, 2, 1, 1])[0]
            if kind == "add":
                doc = product_added(user, t, product_id=pid, quantity=rng.randint(1, 2), message_id=mid)
            elif kind == "remove":
                doc = product_removed(user, t, product_id=pid, message_id=mid)
            elif kind == "snapshot":
                doc = cart_viewed(user, t, products=[product(pid, quantity=2)], message_id=mid)
            else:
                doc = order_completed(user, t, message_id=mid)
            docs.append(anonymous(doc, browser) if login_at is not None and t < login_at else doc)
        if login_at is not None:
            docs.append(login(user, login_at, browser))
    if browsing:
        docs += _browsing(random.Random(seed + 1), run_id, shoppers, days)
    for doc in docs:  # as an SDK sends them: the collector resolves identities and stamps receivedAt itself
        doc.pop("personId", None)
        doc.pop("receivedAt", None)
    return sorted(docs, key=lambda doc: doc["timestamp"])


def _browsing(rng: random.Random, run_id: str, shoppers: int, days: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for shopper in range(shoppers):
        if rng.random() < 0.5:
            continue
        user = f"{run_id}-u{shopper}"
        t = BEGINNING + rng.randrange(days * DAY) // MINUTE * MINUTE
        keen = rng.random() < 0.2
        for n in range(rng.randint(14, 16) if keen else rng.randint(1, 6)):
            t += rng.randint(1, 8) * MINUTE
            mid = f"{user}-view{n}"
            if keen:
                docs.append(product_viewed(user, t, product_id="kite", category="toys", message_id=mid))
            elif rng.random() < 0.3:
                docs.append(category_page_viewed(user, t, category=rng.choice(["bags", "toys"]), message_id=mid))
            else:
                pid = rng.choice(["shoe", "hat"])
                docs.append(product_viewed(user, t, product_id=pid, category="wear", message_id=mid))
    return docs


def time_ms(doc: Mapping[str, Any]) -> int:
    return int(datetime.fromisoformat(doc["timestamp"]).timestamp() * 1000)


def cart_policy(cfg: ClickstreamConfig) -> ModelPolicy:
    """The job config's reminder series, as the cart model takes it."""
    return ModelPolicy(tuple(r.after for r in cfg.cart.reminders), cfg.cart.cooldown, cfg.cart.max_reminders)


def as_model_trigger(trigger: Mapping[str, Any]) -> ModelTrigger:
    """A cart reminder from the triggers topic, as the cart model writes one."""
    lines = tuple(sorted((i["product_id"], i["quantity"]) for i in trigger["items"]))
    return ModelTrigger(trigger["person_id"], trigger["reminder_index"], trigger["fired_at_ms"], lines)


def session_model(docs: Iterable[Mapping[str, Any]], cfg: ClickstreamConfig) -> list[SessionTrigger]:
    """Every person's sessions from all their events at once (keyed as the job keys them), each scored whole."""
    policy = policy_from(cfg)
    gap = policy.session_gap_ms
    by_person: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for doc in docs:
        event = parse_event(as_json(doc))
        by_person[event.person_id].append((event.event_time_ms, as_json(doc).decode()))
    triggers: list[SessionTrigger] = []
    for person, events in by_person.items():
        events.sort()
        groups: list[list[tuple[int, str]]] = []
        for event in events:
            if groups and event[0] - groups[-1][-1][0] < gap:
                groups[-1].append(event)
            else:
                groups.append([event])
        for group in groups:
            summary = summarize(person, (parse_event(p) for _, p in group), policy.weights, policy.browse)
            for t in session_end_triggers(summary, group[-1][0] + gap, policy.browse):
                triggers.append((t.person_id, t.trigger_type, t.fired_at_ms, t.product_id, t.category))
    return sorted(triggers, key=str)


def assert_the_models_triggers(
    what: str, triggers: list[dict[str, Any]], on_topic: list[dict[str, Any]], cfg: ClickstreamConfig
) -> tuple[list[ModelTrigger], list[SessionTrigger]]:
    """Every trigger the job wrote is the models' and the models' are all there, each once: printed, then
    asserted. Returns the models' reminders and browse triggers."""
    fired_carts = sorted(as_model_trigger(t) for t in triggers if t["trigger_type"] == "cart_abandonment")
    expected_carts = expected_triggers(on_topic, cart_policy(cfg))
    fired_browse = sorted(
        ((t["person_id"], t["trigger_type"], t["fired_at_ms"], t["product_id"], t["category"]))
        for t in triggers
        if t["trigger_type"] != "cart_abandonment"
    )
    expected_browse = session_model(on_topic, cfg)
    differences = {
        "missing reminders": sorted(set(expected_carts) - set(fired_carts)),
        "extra reminders": sorted(set(fired_carts) - set(expected_carts)),
        "missing browse triggers": sorted(set(expected_browse) - set(fired_browse), key=str),
        "extra browse triggers": sorted(set(fired_browse) - set(expected_browse), key=str),
    }
    duplicates = len(triggers) - len({t["trigger_id"] for t in triggers})
    print(
        f"{what}: {len(on_topic)} events; reminders expected {len(expected_carts)}, fired {len(fired_carts)}; "
        f"browse triggers expected {len(expected_browse)} ({_kinds(expected_browse)}), fired {len(fired_browse)}; "
        + ", ".join(f"{name} {len(found)}" for name, found in differences.items())
        + f"; duplicate trigger ids {duplicates}"
    )
    assert {name: found[:5] for name, found in differences.items()} == dict.fromkeys(differences, [])
    assert duplicates == 0
    assert len(triggers) == len(expected_carts) + len(expected_browse)
    return expected_carts, expected_browse


def _kinds(triggers: list[SessionTrigger]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for t in triggers:
        counts[t[1]] += 1
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "none"
