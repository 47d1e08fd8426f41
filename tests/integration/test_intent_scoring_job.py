"""The intent scoring job on the real broker, real Redis and a PyFlink local cluster."""

from __future__ import annotations

import json

import pytest

from connectors.kafka import kafka_source
from jobs.config import IntentScoringConfig, load_config
from jobs.flink_env import make_env
from jobs.intent_scoring import DEFAULT_CONFIG, build, policy_from, weights_from
from jobs.runner import kafka_job_sinks
from tests.support.events import (
    BEGINNING,
    HOUR,
    MINUTE,
    as_json,
    category_page_viewed,
    product_added,
    product_viewed,
)
from udfs.events import parse_event
from udfs.intent import summarize

pytestmark = pytest.mark.integration


def _config(run_id: str) -> IntentScoringConfig:
    cfg = load_config(DEFAULT_CONFIG, IntentScoringConfig, {"kafka.bounded": True})
    return cfg.model_copy(
        update={
            "job_name": f"intent-test-{run_id}",
            "kafka": cfg.kafka.model_copy(update={"group_id": f"intent-{run_id}", "starting_offsets": "earliest"}),
            "topics": cfg.topics.model_copy(
                update={"events": f"ie-{run_id}", "dead_letter": f"idlq-{run_id}", "triggers": f"itr-{run_id}"}
            ),
            "redis": cfg.redis.model_copy(update={"key_prefix": f"intent-{run_id}:profile:"}),
        }
    )


def test_sessions_become_scores_and_browse_triggers(kafka, redis_client, run_id):
    cfg = _config(run_id)
    kafka.create_topics(cfg.topics.events, cfg.topics.dead_letter, cfg.topics.triggers)
    t0 = BEGINNING
    viv = [product_viewed("viv", t0 + n * MINUTE, product_id="boot", category="shoes") for n in range(3)]
    viv_next_session = [product_viewed("viv", t0 + 3 * HOUR, product_id="lamp", category="gear")]
    cat = [category_page_viewed("cat", t0 + n * MINUTE, category="bags") for n in range(4)]
    buyer = [
        product_viewed("buyer", t0, product_id="boot", category="shoes"),
        product_viewed("buyer", t0 + MINUTE, product_id="boot", category="shoes"),
        product_viewed("buyer", t0 + 2 * MINUTE, product_id="boot", category="shoes"),
        product_added("buyer", t0 + 3 * MINUTE, product_id="boot", price=99.0),
    ]
    everything = viv + viv_next_session + cat + buyer
    # In event-time order, as a collector sends them, so no event is behind the watermark whenever Flink emits
    # one; viv[0] twice: a duplicate.
    timeline = sorted(everything, key=lambda e: e["timestamp"])
    timeline.insert(timeline.index(viv[0]) + 1, viv[0])
    kafka.produce(cfg.topics.events, [as_json(e) for e in timeline])

    env = make_env(cfg.job_name, {**cfg.flink, "parallelism.default": 2})
    build(env, cfg, kafka_source(cfg.kafka, cfg.topics.events), kafka_job_sinks(cfg))
    env.execute(cfg.job_name)

    triggers = kafka.read_json(cfg.topics.triggers)
    fired = sorted((t["person_id"], t["trigger_type"], t["product_id"], t["category"]) for t in triggers)
    assert fired == [
        ("cat", "browse_abandonment", None, "bags"),
        ("viv", "browse_abandonment", "boot", None),
    ]
    viv_trigger = next(t for t in triggers if t["person_id"] == "viv")
    assert viv_trigger["fired_at_ms"] == t0 + 2 * MINUTE + cfg.session.gap

    # The profile holds what the udfs compute for the same events (the latest session wins).
    prefix = cfg.redis.key_prefix
    for person, session in [("viv", viv_next_session), ("cat", cat), ("buyer", buyer)]:
        expected = summarize(
            person, [parse_event(as_json(e)) for e in session], weights_from(cfg), policy_from(cfg)
        ).to_profile_fields()
        stored = redis_client.hgetall(f"{prefix}{person}")
        assert {k: stored[k] for k in expected} == expected, person
    buyer_profile = redis_client.hgetall(f"{prefix}buyer")
    assert float(buyer_profile["intent_score"]) > 0
    assert json.loads(redis_client.hget(f"{prefix}viv", "recently_viewed")) == ["lamp"]
    history = redis_client.zrange(f"{prefix}viv:triggers", 0, -1)
    assert [json.loads(h)["trigger_id"] for h in history] == [viv_trigger["trigger_id"]]


def test_identify_traits_reach_the_profile(kafka, redis_client, run_id):
    cfg = _config(run_id)
    kafka.create_topics(cfg.topics.events, cfg.topics.dead_letter, cfg.topics.triggers)
    identify = {
        "type": "identify",
        "userId": "ida",
        "messageId": f"id-{run_id}",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "traits": {"email": "Ida@Example.com", "firstName": "Ida", "timezone": "Europe/Berlin"},
    }
    kafka.produce(cfg.topics.events, [as_json(identify)])
    env = make_env(cfg.job_name, {**cfg.flink, "parallelism.default": 1})
    build(env, cfg, kafka_source(cfg.kafka, cfg.topics.events), kafka_job_sinks(cfg))
    env.execute(cfg.job_name)

    profile = redis_client.hgetall(f"{cfg.redis.key_prefix}ida")
    assert profile["email"] == "ida@example.com"
    assert profile["first_name"] == "Ida"
    assert profile["timezone"] == "Europe/Berlin"
    assert profile["traits_updated_ms"] == str(BEGINNING)
