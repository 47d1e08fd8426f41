"""The delivery job on the real broker, Redis and ESP sandbox: guardrails, providers, retries, failures."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from connectors.delivery_ledger import DeliveryLedger
from connectors.kafka import kafka_sink, kafka_source
from jobs.config import DeliveryConfig, load_config
from jobs.email_delivery import DEFAULT_CONFIG, build
from jobs.flink_env import make_env
from tests.support.esp import free_port
from tests.support.events import DAY, HOUR, cart_trigger_json, product
from udfs.guardrails import GuardrailPolicy, in_holdout

pytestmark = pytest.mark.integration


def _config(run_id: str, **updates) -> DeliveryConfig:
    cfg = load_config(DEFAULT_CONFIG, DeliveryConfig, {"kafka.bounded": True})
    guardrails = cfg.guardrails.model_copy(
        update={"holdout_percent": 0.0, "quiet_start": "00:00", "quiet_end": "00:00"}
    )
    retries = cfg.retries.model_copy(
        update={"budget": 5_000, "initial_backoff": 100, "max_backoff": 1_000, "defer_initial": 1_000}
    )
    cfg = cfg.model_copy(
        update={
            "job_name": f"delivery-test-{run_id}",
            "kafka": cfg.kafka.model_copy(update={"group_id": f"delivery-{run_id}", "starting_offsets": "earliest"}),
            "topics": cfg.topics.model_copy(
                update={"triggers": f"dt-{run_id}", "deliveries": f"dd-{run_id}", "dead_letter": f"ddlq-{run_id}"}
            ),
            "redis": cfg.redis.model_copy(update={"key_prefix": f"dlv-{run_id}:profile:"}),
            "ledger_prefix": f"dlv-{run_id}:ledger:",
            "guardrails": guardrails,
            "retries": retries,
        }
    )
    for section, values in updates.items():
        cfg = cfg.model_copy(update={section: getattr(cfg, section).model_copy(update=values)})
    return cfg


def _run(cfg: DeliveryConfig, kafka, triggers: list[bytes]) -> tuple[list[dict], list[dict]]:
    kafka.create_topics(cfg.topics.triggers, cfg.topics.deliveries, cfg.topics.dead_letter)
    kafka.produce(cfg.topics.triggers, triggers)
    env = make_env(cfg.job_name, {**cfg.flink, "parallelism.default": 1})
    deliveries = kafka_sink(cfg.kafka, cfg.topics.deliveries, exactly_once=True, transactional_id_prefix=cfg.job_name)
    dead = kafka_sink(cfg.kafka, cfg.topics.dead_letter, exactly_once=False, transactional_id_prefix="")
    build(env, cfg, kafka_source(cfg.kafka, cfg.topics.triggers), deliveries, dead)
    env.execute(cfg.job_name)
    return kafka.read_json(cfg.topics.deliveries), kafka.read_json(cfg.topics.dead_letter)


def _trigger(person: str, hours_ago: float = 2) -> bytes:
    t = int(time.time() * 1000 - hours_ago * HOUR)
    return cart_trigger_json(person, t, products=(product("boot", 99.5, 1),))


def _profile(redis_client, cfg: DeliveryConfig, person: str, **fields: str) -> None:
    redis_client.hset(f"{cfg.redis.key_prefix}{person}", mapping={"first_name": "Ann", **fields})


def _zone_at_local_hour(hour: int) -> str:
    """An Etc/GMT zone where it is now ``hour`` o'clock (Etc/GMT-3 is UTC+3)."""
    offset = (hour - datetime.now(UTC).hour + 36) % 24 - 12
    return f"Etc/GMT{'-' if offset >= 0 else '+'}{abs(offset)}"


def _outcomes(deliveries: list[dict]) -> dict[str, tuple[str, str | None]]:
    return {d["person_id"]: (d["status"], d["reason"]) for d in deliveries}


def test_each_guardrail_leaves_its_reason(kafka, redis_client, esp, run_id):
    cfg = _config(run_id, guardrails={"holdout_percent": 50.0, "quiet_start": "21:00", "quiet_end": "08:00"})
    policy = GuardrailPolicy(holdout_percent=50.0)
    people = [f"{run_id}-p{n}" for n in range(60)]
    held = next(p for p in people if in_holdout(p, policy))
    ok, unsub, no_mail, bought, capped, night, stale, changed = [p for p in people if not in_holdout(p, policy)][:8]
    noon, midnight = _zone_at_local_hour(12), _zone_at_local_hour(23)
    for person in (held, ok, unsub, bought, capped, stale, changed):
        _profile(redis_client, cfg, person, email=f"{person}@example.com", timezone=noon)
    _profile(redis_client, cfg, no_mail, timezone=noon)
    _profile(redis_client, cfg, night, email=f"{night}@example.com", timezone=midnight)
    now = int(time.time() * 1000)
    redis_client.hset(
        f"{cfg.redis.key_prefix}{bought}", mapping={"cart": '{"items":[],"value":0}', "cart_updated_ms": now}
    )
    redis_client.hset(
        f"{cfg.redis.key_prefix}{changed}",
        mapping={"cart": '{"items":[{"product_id":"x"}],"value":5}', "cart_updated_ms": now},
    )
    ledger = DeliveryLedger(cfg.redis.url, cfg.ledger_prefix)
    ledger.setup()
    ledger.suppress([f"{unsub}@example.com"], "unsubscribed", "test")
    for n in range(2):
        ledger.record_send(capped, now - (n + 1) * HOUR, f"earlier-{n}", DAY)
    ledger.close()

    triggers = [_trigger(p) for p in (held, ok, unsub, no_mail, bought, capped, night, changed)]
    triggers += [_trigger(stale, hours_ago=5 * 24), b'{"trigger_id": "nope"}']
    deliveries, dead = _run(cfg, kafka, triggers)

    outcomes = _outcomes(deliveries)
    assert outcomes == {
        held: ("suppressed", "holdout"),
        ok: ("sent", None),
        unsub: ("suppressed", "unsubscribed"),
        no_mail: ("suppressed", "no_email"),
        bought: ("suppressed", "cart_empty"),
        capped: ("deferred", "frequency_cap"),
        night: ("deferred", "quiet_hours"),
        stale: ("suppressed", "stale"),
        changed: ("suppressed", "cart_changed"),
    }
    held_record = next(d for d in deliveries if d["person_id"] == held)
    assert held_record["holdout"] is True and held_record["variant"] in ("A", "B")
    night_record = next(d for d in deliveries if d["person_id"] == night)
    assert night_record["send_after_ms"] > now
    assert len(dead) == 1 and dead[0]["field"] == "trigger_id"

    (sent,) = esp.messages(to=f"{ok}@example.com")
    assert sent["provider"] == "sendgrid"
    assert sent["trigger_id"] == json.loads(triggers[1])["trigger_id"]
    assert "Product boot" in json.dumps(sent)
    assert esp.messages(to=f"{unsub}@example.com") == [] and esp.messages(to=f"{held}@example.com") == []


def test_retries_through_429s_and_408s_then_sends_once(kafka, redis_client, esp, run_id):
    """Answers that say the message was not taken are retried in place (a 5xx is not: the recovery tests)."""
    cfg = _config(run_id, retries={"max_attempts": 6, "budget": 10_000})
    person = f"{run_id}-retry"
    _profile(redis_client, cfg, person, email=f"{person}@example.com")
    esp.fail_next("sendgrid", {"status": 429, "retry_after": 1}, {"status": 408}, {"status": 429}, {"status": 408})
    deliveries, _ = _run(cfg, kafka, [_trigger(person)])
    (record,) = deliveries
    assert (record["status"], record["provider"]) == ("sent", "sendgrid")
    assert len(esp.messages(to=f"{person}@example.com")) == 1


def test_fallback_provider_takes_over_when_the_primary_stays_down(kafka, redis_client, esp, run_id):
    """SendGrid unreachable (nothing listens where it should be): nothing was sent, so Mailchimp takes it."""
    cfg = _config(run_id)
    sendgrid = cfg.providers.sendgrid.model_copy(update={"base_url": f"http://127.0.0.1:{free_port()}"})
    cfg = cfg.model_copy(update={"providers": cfg.providers.model_copy(update={"sendgrid": sendgrid})})
    person = f"{run_id}-fallback"
    _profile(redis_client, cfg, person, email=f"{person}@example.com")
    deliveries, _ = _run(cfg, kafka, [_trigger(person)])
    (record,) = deliveries
    assert (record["status"], record["provider"]) == ("sent", "mailchimp")
    (message,) = esp.messages(to=f"{person}@example.com")
    assert message["provider"] == "mailchimp"


def test_a_permanent_400_is_failed_and_dead_lettered_with_the_answer(kafka, redis_client, esp, run_id):
    cfg = _config(run_id)
    person = f"{run_id}-bad"
    _profile(redis_client, cfg, person, email=f"{person}@example.com")
    esp.fail_next("sendgrid", {"status": 400})
    deliveries, dead = _run(cfg, kafka, [_trigger(person)])
    (record,) = deliveries
    assert (record["status"], record["reason"]) == ("failed", "provider_rejected")
    assert "400" in record["detail"]
    (letter,) = dead
    assert letter["error"] == "provider_rejected" and "400" in letter["detail"]
    assert esp.messages(to=f"{person}@example.com") == []


@pytest.mark.parametrize("provider", ["mailchimp", "smtp", "webhook"])
def test_every_provider_delivers(kafka, redis_client, esp, run_id, provider):
    cfg = _config(run_id, providers={"primary": provider, "fallbacks": []})
    person = f"{run_id}-{provider}"
    _profile(redis_client, cfg, person, email=f"{person}@example.com")
    deliveries, _ = _run(cfg, kafka, [_trigger(person)])
    (record,) = deliveries
    assert (record["status"], record["provider"]) == ("sent", provider)
    (message,) = esp.messages(to=f"{person}@example.com")
    assert message["provider"] == provider
