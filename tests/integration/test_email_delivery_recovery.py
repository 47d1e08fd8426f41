"""Delivery across trouble, with the job as its own process: a crash mid-send, and a provider outage.

No email is sent twice and none is lost: a crash between the provider's acceptance and our "sent"
mark is reconciled through the provider's own lookup API; an outage of every provider defers the
email (processing-time timer) and sends it when they are back.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from sandbox.esp import esp_sandbox_url
from sandbox.settings import PROJECT_ROOT
from tests.integration.test_email_delivery import Esp, _trigger
from tests.support.jobs import kill, running_job, start_job, wait_for

pytestmark = pytest.mark.integration


def _config_file(tmp_path: Path, run_id: str, **retries: object) -> Path:
    cfg = yaml.safe_load((PROJECT_ROOT / "flink-conf/jobs/email_delivery.yaml").read_text())
    cfg["job_name"] = f"recovery-{run_id}"
    cfg["kafka"].update({"group_id": f"recovery-{run_id}", "starting_offsets": "committed", "bounded": False})
    cfg["topics"] = {"triggers": f"rt-{run_id}", "deliveries": f"rd-{run_id}", "dead_letter": f"rdlq-{run_id}"}
    cfg["redis"]["key_prefix"] = f"rec-{run_id}:profile:"
    cfg["ledger_prefix"] = f"rec-{run_id}:ledger:"
    cfg["guardrails"].update({"holdout_percent": 0, "quiet_start": "00:00", "quiet_end": "00:00"})
    cfg["retries"].update({"initial_backoff": "100ms", "max_backoff": "500ms", "defer_initial": "1s", **retries})
    # No checkpoint completes before the crash, so the restarted job reads the trigger again.
    cfg["flink"].update({"execution.checkpointing.interval": "2min", "restart-strategy.type": "none"})
    path = tmp_path / f"delivery-{run_id}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def esp(sandbox):
    client = Esp(esp_sandbox_url(sandbox))
    client.clear_faults()
    yield client
    client.clear_faults()


def test_a_crash_after_the_provider_accepted_sends_nothing_twice(kafka, redis_client, esp, run_id, tmp_path):
    config = _config_file(tmp_path, run_id)
    topics = [f"rt-{run_id}", f"rd-{run_id}", f"rdlq-{run_id}"]
    kafka.create_topics(*topics, partitions=1)
    person = f"{run_id}-crash"
    redis_client.hset(f"rec-{run_id}:profile:{person}", mapping={"email": f"{person}@example.com"})
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
    assert redis_client.get(f"rec-{run_id}:ledger:claim:{trigger_id_of(trigger)}") is not None

    with running_job("email_delivery", config, log) as second:
        wait_for(lambda: len(kafka.read_json(topics[1])) >= 1, [second], log, "a delivery record")
        time.sleep(3)  # anything sent twice would show up by now

    (record,) = kafka.read_json(topics[1])
    assert (record["status"], record["reason"], record["provider"]) == ("sent", "reconciled", "sendgrid")
    assert len(esp.messages(to=f"{person}@example.com")) == 1


def test_an_outage_of_every_provider_delays_the_email_then_sends_it(kafka, redis_client, esp, run_id, tmp_path):
    config = _config_file(tmp_path, run_id, max_attempts=2)
    topics = [f"rt-{run_id}", f"rd-{run_id}", f"rdlq-{run_id}"]
    kafka.create_topics(*topics, partitions=1)
    person = f"{run_id}-outage"
    redis_client.hset(f"rec-{run_id}:profile:{person}", mapping={"email": f"{person}@example.com"})
    esp.fail_next("sendgrid", {"status": 500}, {"status": 503})
    esp.fail_next(
        "mailchimp",
        {"status": 500, "body": {"status": "error", "code": -99, "name": "GeneralError", "message": "down"}},
        {"status": 500, "body": {"status": "error", "code": -99, "name": "GeneralError", "message": "down"}},
    )
    kafka.produce(topics[0], [_trigger(person)])

    log = tmp_path / "delivery.log"
    with running_job("email_delivery", config, log) as job:
        statuses = lambda: [d["status"] for d in kafka.read_json(topics[1])]  # noqa: E731
        wait_for(lambda: "sent" in statuses(), [job], log, "the email, once the providers are back")

    records = kafka.read_json(topics[1])
    assert [(r["status"], r["reason"]) for r in records] == [("deferred", "retry_later"), ("sent", None)]
    assert records[0]["send_after_ms"] > records[0]["decided_at_ms"]
    assert len(esp.messages(to=f"{person}@example.com")) == 1


def trigger_id_of(trigger: bytes) -> str:
    import json

    return json.loads(trigger)["trigger_id"]
