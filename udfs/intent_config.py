"""The knobs of intent scoring and browse abandonment, validated once when the job reads its config.

Every rejection is a ``ValueError`` that names the field (``IntentWeights.half_life_ms must be ...``), so a bad
config fails at job start with the key to fix. :mod:`udfs.intent` re-exports both classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["BrowsePolicy", "IntentWeights"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentWeights:
    """How much each kind of event says about a person's interest; all config.

    :param view: a page or screen view, or a "Product Viewed". Default 1.0.
    :param cart_view: a "Cart Viewed". Default 2.0.
    :param cart_add: a "Product Added". Default 5.0.
    :param checkout: a "Checkout Started". Default 10.0.
    :param repeat_view: intent added per view of a product beyond its first. Default 2.0.
    :param category_view: how much one view in a category adds to its affinity; 0 turns categories off.
        Default 1.0.
    :param half_life_ms: an event this much older than the newest one counts half (ms). Default 30 minutes.
    :param scale: the raw score at which a score reaches 63.2 (1 - 1/e); larger saturates later. Default 20.0.
    """

    view: float = 1.0
    cart_view: float = 2.0
    cart_add: float = 5.0
    checkout: float = 10.0
    repeat_view: float = 2.0
    category_view: float = 1.0
    half_life_ms: float = 30 * 60 * 1000
    scale: float = 20.0

    def __post_init__(self) -> None:
        for name in ("view", "cart_view", "cart_add", "checkout", "repeat_view", "category_view"):
            value = getattr(self, name)
            if not _is_finite_number(value) or value < 0:
                raise ValueError(f"IntentWeights.{name} must be a finite number >= 0, got {value!r}")
        for name in ("half_life_ms", "scale"):
            value = getattr(self, name)
            if not _is_finite_number(value) or value <= 0:
                raise ValueError(f"IntentWeights.{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowsePolicy:
    """When a session that ended without a cart deserves an email, and how much of it the profile keeps.

    :param min_product_views: views of one product that make a browse abandonment. Default 3.
    :param min_category_views: views in the top category that make one, when no product qualifies. Default 4.
    :param high_intent_threshold: the intent score (0-100) from which a high-intent trigger fires; ``None``
        turns that trigger off. Default 70.
    :param recent_products: how many recently viewed product ids the profile keeps. Default 10.
    :param top_categories: how many top categories the profile keeps. Default 3.
    """

    min_product_views: int = 3
    min_category_views: int = 4
    high_intent_threshold: float | None = 70
    recent_products: int = 10
    top_categories: int = 3

    def __post_init__(self) -> None:
        for name, minimum in (
            ("min_product_views", 1),
            ("min_category_views", 1),
            ("recent_products", 0),
            ("top_categories", 0),
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < minimum:
                raise ValueError(f"BrowsePolicy.{name} must be an integer >= {minimum}, got {value!r}")
        threshold = self.high_intent_threshold
        if threshold is not None and not (_is_finite_number(threshold) and 0 <= threshold <= 100):
            raise ValueError(
                f"BrowsePolicy.high_intent_threshold must be a number from 0 to 100 or None, got {threshold!r}"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
