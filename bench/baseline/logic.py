"""The rules the workers apply, built from the shipped job config as the clickstream job builds them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from udfs.cart import CartPolicy
from udfs.intent_config import BrowsePolicy, IntentWeights

__all__ = ["CLICKSTREAM_CONFIG", "Logic", "load_logic"]

CLICKSTREAM_CONFIG = Path(__file__).resolve().parents[2] / "flink-conf/jobs/clickstream.yaml"


@dataclass(frozen=True)
class Logic:
    """Everything a worker needs to decide like the job does; plain data, so it pickles to a spawned worker."""

    cart: CartPolicy
    weights: IntentWeights
    browse: BrowsePolicy
    session_gap_ms: int
    out_of_orderness_ms: int
    profile_ttl_ms: int


def load_logic(config: Path = CLICKSTREAM_CONFIG) -> Logic:
    """The policies through the config's own ``to_policy``/``to_weights``, which ``jobs/clickstream.py``'s
    ``policy_from`` calls too (that module itself imports PyFlink, which the baseline never loads)."""
    from jobs.config import ClickstreamConfig, load_config  # pydantic: the parent's, not every worker's, start-up

    cfg = load_config(config, ClickstreamConfig)
    return Logic(
        cart=cfg.cart.to_policy(),
        weights=cfg.weights.to_weights(),
        browse=cfg.browse.to_policy(),
        session_gap_ms=cfg.session.gap,
        out_of_orderness_ms=cfg.event_time.max_out_of_orderness,
        profile_ttl_ms=cfg.redis.profile_ttl,
    )
