"""Intent scoring and browse abandonment for one person's session, as pure functions of the session's events.

The Flink job keys events by person and gathers them in event-time session windows. On every new event, and
once more when the session closes, it passes all the window's events to :func:`summarize`; the resulting
:class:`SessionSummary` becomes the profile's view fields (:meth:`SessionSummary.to_profile_fields`). When the
window closes, :func:`session_end_triggers` turns the summary into browse-abandonment and high-intent triggers.
Nothing is remembered between calls, so the state to clear is the window itself, which Flink drops at its end.

Scores, exactly as computed (every weight is an :class:`IntentWeights` field; times are epoch ms)::

    events          the window's events, one per message_id, ordered by (event_time_ms, message_id)
    as_of           the newest event time in the window
    decay(e)        = 0.5 ** ((as_of - t_e) / half_life_ms)   1 for the newest event, 1/2 one half-life before it
    w(e)            = view         for page and screen events, and track "Product Viewed"
                      cart_view    for track "Cart Viewed"
                      cart_add     for track "Product Added"
                      checkout     for track "Checkout Started"
                      0            for anything else
    w_intent(e)     = w(e) for "Cart Viewed", "Product Added" and "Checkout Started", else 0
    views_p         = the number of "Product Viewed" events for product p
    engagement_raw  = sum_e w(e) * decay(e)
    intent_raw      = sum_e w_intent(e) * decay(e) + repeat_view * sum_p max(0, views_p - 1)
    score(raw)      = round(100 * (1 - exp(-raw / scale)), 2)   0 for no activity, approaching 100 as raw grows
    affinity(c)     = round(sum_e category_view * decay(e), 4)  over product views and page/screen events in c

Repeat views are counted, not decayed: within one session, coming back to a product is the signal.

Properties are read leniently. The events were validated for identity and time by
:func:`udfs.events.parse_event`, but property shapes vary from shop to shop, and a score is no reason to
dead-letter an event. The product is ``properties.product_id``, else ``properties.sku`` (a non-blank string or
an integer); the category is ``properties.category`` (a non-blank string). A value of any other shape is
ignored: the event still counts towards the scores, just not towards a product or a category.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from udfs.events import ClickEvent
from udfs.intent_config import BrowsePolicy, IntentWeights

__all__ = [
    "BROWSE_ABANDONMENT",
    "HIGH_INTENT",
    "BrowsePolicy",
    "BrowseTrigger",
    "IntentWeights",
    "SessionSummary",
    "make_browse_trigger_id",
    "session_end_triggers",
    "summarize",
]

BROWSE_ABANDONMENT = "browse_abandonment"
HIGH_INTENT = "high_intent"

PRODUCT_VIEWED = "Product Viewed"
CART_VIEWED = "Cart Viewed"
PRODUCT_ADDED = "Product Added"
CHECKOUT_STARTED = "Checkout Started"
ORDER_COMPLETED = "Order Completed"

_PAGE_TYPES = frozenset({"page", "screen"})
_CART_EVENTS = frozenset({PRODUCT_ADDED, CHECKOUT_STARTED})
_AFFINITY_DIGITS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSummary:
    """What one session says about a person, as of its newest event.

    :param session_start_ms: the oldest event time in the window.
    :param as_of_ms: the newest event time in the window; every decay is measured from it.
    :param product_views: views per product id, in order of first view.
    :param category_affinity: decayed weight per category (4 decimals), in order of first view.
    :param category_views: views per category, in order of first view.
    :param top_categories: categories with a positive affinity, highest first, ties by name.
    :param recently_viewed: distinct product ids, most recently viewed first.
    :param top_product: the most viewed product; ties go to the one viewed last, then to the smaller id.
    :param carted: the session has a "Product Added" or "Checkout Started".
    :param purchased: the session has an "Order Completed".
    :param event_count: distinct events (by message id) of any kind.
    """

    person_id: str
    session_start_ms: int
    as_of_ms: int
    engagement_score: float
    intent_score: float
    product_views: dict[str, int]
    category_affinity: dict[str, float]
    category_views: dict[str, int]
    top_categories: tuple[str, ...]
    recently_viewed: tuple[str, ...]
    top_product: str | None
    carted: bool
    purchased: bool
    event_count: int

    @property
    def top_category(self) -> str | None:
        """The category with the highest affinity (ties by name); ``None`` when no category has any."""
        ranked = _ranked_categories(self.category_affinity)
        return ranked[0] if ranked else None

    def to_profile_fields(self) -> dict[str, str]:
        """The profile hash fields; ``scored_at_ms`` is the event-time guard, so an older summary never wins."""
        return {
            "engagement_score": f"{self.engagement_score:.2f}",
            "intent_score": f"{self.intent_score:.2f}",
            "top_categories": _compact_json(list(self.top_categories)),
            "recently_viewed": _compact_json(list(self.recently_viewed)),
            "session_start_ms": str(self.session_start_ms),
            "scored_at_ms": str(self.as_of_ms),
            "last_seen_ms": str(self.as_of_ms),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowseTrigger:
    """Ask delivery to send one browse email; ``trigger_id`` is stable across replays, so delivery dedups on it.

    A browse abandonment names either the product or, when no product was viewed often enough, the category.
    A high-intent trigger carries the session's top product and top category, when there are any, as context.
    """

    trigger_id: str
    trigger_type: str
    person_id: str
    session_start_ms: int
    fired_at_ms: int
    product_id: str | None
    category: str | None
    intent_score: float
    recently_viewed: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger_id": self.trigger_id,
            "trigger_type": self.trigger_type,
            "person_id": self.person_id,
            "session_start_ms": self.session_start_ms,
            "fired_at_ms": self.fired_at_ms,
            "product_id": self.product_id,
            "category": self.category,
            "intent_score": self.intent_score,
            "recently_viewed": list(self.recently_viewed),
        }

    def to_json(self) -> bytes:
        """Compact, key-sorted, ASCII-only JSON: byte-identical on replay and always encodable."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode("ascii")


def make_browse_trigger_id(
    trigger_type: str, person_id: str, session_start_ms: int, product_id: str | None, category: str | None
) -> str:
    """Deterministic id, so a replay or a restart re-emits the same trigger and delivery sends it once."""
    key = f"{trigger_type}|{person_id}|{session_start_ms}|{product_id or category or ''}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def summarize(
    person_id: str, events: Iterable[ClickEvent], weights: IntentWeights, policy: BrowsePolicy
) -> SessionSummary:
    """Score one session window; the result depends only on the set of distinct events, not on arrival order.

    :param person_id: the window's key; ``events`` are all this person's.
    :param events: every event in the window, duplicates included; at least one.
    :raises ValueError: ``events`` is empty (a session window never is).
    """
    ordered = _distinct_in_order(events)
    if not ordered:
        raise ValueError("summarize needs at least one event; a session window is never empty")
    as_of_ms = ordered[-1].event_time_ms

    engagement_raw = intent_raw = 0.0
    product_views: dict[str, int] = {}
    last_viewed_ms: dict[str, int] = {}
    viewed_in_order: list[str] = []
    affinity: dict[str, float] = {}
    category_views: dict[str, int] = {}
    carted = purchased = False
    for event in ordered:
        decay = 0.5 ** ((as_of_ms - event.event_time_ms) / weights.half_life_ms)
        name = event.name if event.type == "track" else ""  # a page's name is not a track event's
        weight, intent_weight = _event_weights(event.type, name, weights)
        engagement_raw += weight * decay
        intent_raw += intent_weight * decay
        carted = carted or name in _CART_EVENTS
        purchased = purchased or name == ORDER_COMPLETED

        is_product_view = name == PRODUCT_VIEWED
        if not (is_product_view or event.type in _PAGE_TYPES):
            continue
        props = event.properties if isinstance(event.properties, Mapping) else {}
        category = _category(props)
        if category is not None:
            affinity[category] = affinity.get(category, 0.0) + weights.category_view * decay
            category_views[category] = category_views.get(category, 0) + 1
        product_id = _product_id(props) if is_product_view else None
        if product_id is not None:
            product_views[product_id] = product_views.get(product_id, 0) + 1
            last_viewed_ms[product_id] = event.event_time_ms
            viewed_in_order.append(product_id)

    intent_raw += weights.repeat_view * sum(views - 1 for views in product_views.values())
    category_affinity = {category: round(value, _AFFINITY_DIGITS) for category, value in affinity.items()}
    top_product = min(product_views, key=lambda pid: (-product_views[pid], -last_viewed_ms[pid], pid), default=None)
    return SessionSummary(
        person_id=person_id,
        session_start_ms=ordered[0].event_time_ms,
        as_of_ms=as_of_ms,
        engagement_score=_score(engagement_raw, weights.scale),
        intent_score=_score(intent_raw, weights.scale),
        product_views=product_views,
        category_affinity=category_affinity,
        category_views=category_views,
        top_categories=tuple(_ranked_categories(category_affinity)[: policy.top_categories]),
        recently_viewed=tuple(dict.fromkeys(reversed(viewed_in_order)))[: policy.recent_products],
        top_product=top_product,
        carted=carted,
        purchased=purchased,
        event_count=len(ordered),
    )


def session_end_triggers(
    summary: SessionSummary, session_end_ms: int, policy: BrowsePolicy
) -> tuple[BrowseTrigger, ...]:
    """The triggers for a session that just closed: at most one browse abandonment and one high intent.

    A session with a cart or a purchase gets none: the cart job follows those up.

    :param summary: the window's final summary, made with the same ``policy``.
    :param session_end_ms: the window's end (the newest event time plus the session gap); the triggers' time.
    :raises ValueError: ``session_end_ms`` is before the session's newest event.
    """
    if session_end_ms < summary.as_of_ms:
        raise ValueError(f"session_end_ms ({session_end_ms}) is before the session's newest event ({summary.as_of_ms})")
    if summary.carted or summary.purchased:
        return ()
    triggers: list[BrowseTrigger] = []
    product_id, category = summary.top_product, summary.top_category
    if product_id is not None and summary.product_views[product_id] >= policy.min_product_views:
        triggers.append(_trigger(BROWSE_ABANDONMENT, summary, session_end_ms, product_id, None))
    elif category is not None and summary.category_views[category] >= policy.min_category_views:
        triggers.append(_trigger(BROWSE_ABANDONMENT, summary, session_end_ms, None, category))
    threshold = policy.high_intent_threshold
    if threshold is not None and summary.intent_score >= threshold:
        triggers.append(_trigger(HIGH_INTENT, summary, session_end_ms, product_id, category))
    return tuple(triggers)


def _trigger(
    trigger_type: str, summary: SessionSummary, fired_at_ms: int, product_id: str | None, category: str | None
) -> BrowseTrigger:
    return BrowseTrigger(
        trigger_id=make_browse_trigger_id(
            trigger_type, summary.person_id, summary.session_start_ms, product_id, category
        ),
        trigger_type=trigger_type,
        person_id=summary.person_id,
        session_start_ms=summary.session_start_ms,
        fired_at_ms=fired_at_ms,
        product_id=product_id,
        category=category,
        intent_score=summary.intent_score,
        recently_viewed=summary.recently_viewed,
    )


def _distinct_in_order(events: Iterable[ClickEvent]) -> list[ClickEvent]:
    """One event per message id, oldest first; copies that disagree resolve the same way in any arrival order."""
    chosen: dict[str, ClickEvent] = {}
    for event in events:
        kept = chosen.get(event.message_id)
        if kept is None or (kept != event and _copy_rank(event) < _copy_rank(kept)):
            chosen[event.message_id] = event
    return sorted(chosen.values(), key=lambda event: (event.event_time_ms, event.message_id))


def _copy_rank(event: ClickEvent) -> tuple[int, str, str, str]:
    """Only for a message id sent twice with different content (a producer bug): the earliest copy wins."""
    props = json.dumps(event.properties, sort_keys=True, default=repr)
    return event.event_time_ms, event.type, event.name, props


def _event_weights(event_type: str, track_name: str, weights: IntentWeights) -> tuple[float, float]:
    """``(w, w_intent)`` of the module docstring's formula."""
    if event_type in _PAGE_TYPES or track_name == PRODUCT_VIEWED:
        return weights.view, 0.0
    if track_name == CART_VIEWED:
        return weights.cart_view, weights.cart_view
    if track_name == PRODUCT_ADDED:
        return weights.cart_add, weights.cart_add
    if track_name == CHECKOUT_STARTED:
        return weights.checkout, weights.checkout
    return 0.0, 0.0


def _score(raw: float, scale: float) -> float:
    return round(100 * (1 - math.exp(-raw / scale)), 2)


def _ranked_categories(affinity: Mapping[str, float]) -> list[str]:
    return sorted((c for c, value in affinity.items() if value > 0), key=lambda c: (-affinity[c], c))


def _product_id(props: Mapping[str, Any]) -> str | None:
    """``product_id``, else ``sku``; integers are accepted, as the cart does, because many shops number products."""
    for key in ("product_id", "sku"):
        value = props.get(key)
        if _is_int(value):
            return str(value)
        if isinstance(value, str) and value and not value.isspace():
            return value
    return None


def _category(props: Mapping[str, Any]) -> str | None:
    value = props.get("category")
    return value if isinstance(value, str) and value and not value.isspace() else None


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
