"""Delivery across trouble, with the job as its own process started as a user starts it: one email per trigger.

- a crash while the provider holds an accepted message: reconciled through the provider's lookup API, not resent;
- an outage of every provider: the email waits (processing-time timer) and goes out once they are back;
- a 500, or no answer in time, after the provider took the message: asked before any resend (both HTTP APIs);
- a refused key: the fallback provider takes the mail; the problem is logged once, nothing is dead-lettered.

Each test prints its tally (triggers, emails per trigger in the outbox, final outcomes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.test_email_delivery import _trigger
from tests.support.jobs import delivery_job_config, delivery_topics, kill, running_job, start_job, wait_for
from tests.support.outcomes import tally

pytestmark = pytest.mark.integration


def _config_file(tmp_path: Path, run_id: str, providers: dict | None = None, **retries: object) -> Path:
    # No checkpoint completes before a crash, so a restarted job reads the trigger again.
    flink = {"execution.checkpointing.interval": "2min"}
    return delivery_job_config(tmp_path, f"recovery-{run_id}", retries, providers, flink)


def _topics(kafka, run_id: str) -> list[str]:
    topics = list(delivery_topics(f"recovery-{run_id}").values())
    kafka.create_topics(*topics, partitions=1)
    return topics


def _person(redis_client, run_id: str, name: str) -> str:
    person = f"{run_id}-{name}"
    redis_client.hset(f"recovery-{run_id}:profile:{person}", mapping={"email": f"{person}@example.com"})
    return person


def _trigger_id(trigger: bytes) -> str:
    return json.loads(trigger)["trigger_id"]


def _final_sent(kafka, topic: str) -> bool:
    return any(r["status"] != "deferred" for r in kafka.read_json(topic))


def _one_email_one_outcome(kafka, esp, topics: list[str], trigger: bytes, person: str) -> list[dict]:
    time.sleep(3)  # anything sent twice would show up by now
    records = kafka.read_json(topics[1])
    counts = tally([_trigger_id(trigger)], records, esp.messages(to=f"{person}@example.com"))
    print(counts.summary(), [(r["status"], r["reason"]) for r in records])
    assert counts.problems([_trigger_id(trigger)]) == []
    return records


def test_a_crash_after_the_provider_accepted_sends_nothing_twice(kafka, redis_client, esp, run_id, tmp_path):
    config = _config_file(tmp_path, run_id)
    topics = _topics(kafka, run_id)
    person = _person(redis_client, run_id, "crash")
    trigger = _trigger(person)
    # SendGrid keeps the message, then answers only after 8 s: the job is killed while it waits.
    esp.fail_next("sendgrid", {"status": 202, "delay_ms": 8000})
    kafka.produce(topics[0], [trigger])

    log = tmp_path / "delivery.log"
    first = start_job("email_delivery", config, log)
    try:
        wait_for(lambda: len(esp.messages(to=f"{person}@example.com")) == 1, [first], log, "the accepted message")
    finally:
        kill(first)
    assert redis_client.get(f"recovery-{run_id}:ledger:claim:{_trigger_id(trigger)}") is not None

    with running_job("email_delivery", config, log) as second:  # the same command again
        wait_for(lambda: _final_sent(kafka, topics[1]), [second], log, "a delivery record")
        records = _one_email_one_outcome(kafka, esp, topics, trigger, person)
    assert [(r["status"], r["reason"], r["provider"]) for r in records] == [("sent", "reconciled", "sendgrid")]


def test_an_outage_of_every_provider_delays_the_email_then_sends_it(kafka, redis_client, esp, run_id, tmp_path):
    """Rate limited everywhere (429: nothing was taken), twice: deferred, then sent once they take mail again."""
    config = _config_file(tmp_path, run_id, max_attempts=1)
    topics = _topics(kafka, run_id)
    person = _person(redis_client, run_id, "outage")
    esp.fail_next("sendgrid", {"status": 429}, {"status": 429})
    esp.fail_next("mailchimp", {"status": 429}, {"status": 429})
    trigger = _trigger(person)
    kafka.produce(topics[0], [trigger])

    log = tmp_path / "delivery.log"
    with running_job("email_delivery", config, log) as job:
        wait_for(lambda: _final_sent(kafka, topics[1]), [job], log, "the email, once the providers are back")
        records = _one_email_one_outcome(kafka, esp, topics, trigger, person)
    assert [(r["status"], r["reason"]) for r in records] == [
        ("deferred", "retry_later"),
        ("deferred", "retry_later"),
        ("sent", None),
    ]
    assert records[0]["send_after_ms"] > records[0]["decided_at_ms"]


@pytest.mark.parametrize(
    ("provider", "fault"),
    [
        ("sendgrid", {"status": 500, "accepted": True}),
        ("sendgrid", {"status": 202, "delay_ms": 4000}),  # taken, answered after the job's 1.5 s timeout
        ("mailchimp", {"status": 500, "accepted": True}),
        ("mailchimp", {"status": 200, "delay_ms": 4000}),
    ],
    ids=["sendgrid-500", "sendgrid-timeout", "mailchimp-500", "mailchimp-timeout"],
)
def test_a_lost_answer_after_the_provider_took_the_message_sends_it_once(
    kafka, redis_client, esp, run_id, tmp_path, provider, fault
):
    config = _config_file(tmp_path, run_id, providers={"primary": provider, "fallbacks": [], "timeout": "1500ms"})
    topics = _topics(kafka, run_id)
    person = _person(redis_client, run_id, "lost-answer")
    esp.fail_next(provider, fault)
    trigger = _trigger(person)
    kafka.produce(topics[0], [trigger])

    log = tmp_path / "delivery.log"
    with running_job("email_delivery", config, log) as job:
        wait_for(lambda: _final_sent(kafka, topics[1]), [job], log, "the outcome")
        records = _one_email_one_outcome(kafka, esp, topics, trigger, person)
    assert [(r["status"], r["reason"]) for r in records] == [("deferred", "outcome_unknown"), ("sent", "reconciled")]
    assert records[1]["provider"] == provider


def test_a_refused_key_sends_through_the_fallback_named_once_not_dead_lettered(
    kafka, redis_client, esp, run_id, tmp_path
):
    config = _config_file(tmp_path, run_id)
    topics = _topics(kafka, run_id)
    people = [_person(redis_client, run_id, f"key-{n}") for n in range(6)]
    triggers = [_trigger(person) for person in people]
    kafka.produce(topics[0], triggers)

    log = tmp_path / "delivery.log"
    revoked = {"SENDGRID_API_KEY": "SG.revoked-key"}
    with running_job("email_delivery", config, log, env=revoked) as job:
        wait_for(lambda: len(kafka.read_json(topics[1])) >= len(triggers), [job], log, "every outcome")
        time.sleep(3)
    records = kafka.read_json(topics[1])
    outbox = [m for person in people for m in esp.messages(to=f"{person}@example.com")]
    counts = tally([_trigger_id(t) for t in triggers], records, outbox)
    print(counts.summary())
    assert counts.problems([_trigger_id(t) for t in triggers]) == []
    assert {(m["provider"]) for m in outbox} == {"mailchimp"}
    assert kafka.read_json(topics[2]) == [], "a refused key is not the emails' fault"
    logs = [path.read_text(errors="replace") for path in tmp_path.rglob("*.log")]  # the job's, and Flink's
    named = [line for text in logs for line in text.splitlines() if "refused the credential" in line]
    print("\n".join(named))
    assert len([line for line in named if "fallback" in line]) == 1, "the key problem is named once"
