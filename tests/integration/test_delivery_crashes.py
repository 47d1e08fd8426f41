"""The delivery job SIGKILLed again and again, started each time with the same command, while providers
misbehave: every trigger gets exactly one email and exactly one final outcome on ``email.deliveries``.

The providers' answers are drawn (seeded, the seed printed) from what a real provider does: accept, accept
slowly, rate-limit (429: every provider at once, so emails are deferred), accept and then answer 500, accept and
answer after the job's timeout, refuse with a 500 without taking the message. The job is killed at a random
moment after it shows progress and has completed a checkpoint, a few times, then left to finish. Kills land
during slow answers, with emails deferred in state, between a provider's acceptance and the ledger's ``sent``,
and between an outcome and the checkpoint that commits it.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from tests.integration.test_email_delivery import _trigger
from tests.support.jobs import delivery_job_config, delivery_topics, kill, start_job, wait_for
from tests.support.outcomes import tally

pytestmark = pytest.mark.integration

TRIGGERS = 40
KILLS = 5
OUTAGE = [{"status": 429}] * 30  # both providers at first: emails wait in state

SENDGRID_ANSWERS = [
    ({"status": 202}, 4),
    ({"status": 202, "delay_ms": 1200}, 3),  # slow: a kill may land while it waits
    ({"status": 429, "retry_after": 1}, 3),
    ({"status": 500, "accepted": True}, 2),  # took it, answered 500
    ({"status": 202, "delay_ms": 2500}, 2),  # took it, answered after the job's 1.5 s timeout
    ({"status": 503}, 1),  # did not take it
]
MAILCHIMP_ANSWERS = [
    ({"status": 200}, 3),
    ({"status": 429, "retry_after": 1}, 3),
    ({"status": 500, "accepted": True}, 1),
]


def _draw(rng: random.Random, weighted: list[tuple[dict, int]], n: int) -> list[dict]:
    answers, weights = zip(*weighted, strict=True)
    return [dict(a) for a in rng.choices(answers, weights=weights, k=n)]


def _config_file(tmp_path: Path, run_id: str) -> Path:
    retries = {
        "max_attempts": 2,
        "budget": "2s",
        "max_backoff": "300ms",
        "defer_max": "2s",
        "breaker_failures": 1000,
    }
    flink = {"execution.checkpointing.interval": "1s"}
    return delivery_job_config(tmp_path, f"crashes-{run_id}", retries, {"timeout": "1500ms"}, flink)


def _checkpointed_since(root: Path, started: float) -> bool:
    """Whether this run completed a checkpoint: the kill then lands on state worth restoring."""
    return any(m.stat().st_mtime > started for m in root.glob("*/chk-*/_metadata"))


def test_repeated_sigkills_send_every_trigger_once_with_one_final_outcome(kafka, redis_client, esp, run_id, tmp_path):
    seed = int(run_id, 16)
    rng = random.Random(seed)
    print(f"seed {seed}")
    config = _config_file(tmp_path, run_id)
    topics = delivery_topics(f"crashes-{run_id}")
    kafka.create_topics(*topics.values(), partitions=2)
    people = [f"{run_id}-p{n}" for n in range(TRIGGERS)]
    for person in people:
        redis_client.hset(f"crashes-{run_id}:profile:{person}", mapping={"email": f"{person}@example.com"})
    triggers = [_trigger(person) for person in people]
    trigger_ids = [json.loads(t)["trigger_id"] for t in triggers]
    esp.fail_next("sendgrid", *OUTAGE, *_draw(rng, SENDGRID_ANSWERS, 3 * TRIGGERS))
    esp.fail_next("mailchimp", *OUTAGE, *_draw(rng, MAILCHIMP_ANSWERS, TRIGGERS))
    waves = [triggers[: TRIGGERS // 2], triggers[TRIGGERS // 2 : 3 * TRIGGERS // 4], triggers[3 * TRIGGERS // 4 :]]

    def outbox() -> list[dict]:
        return [m for m in esp.messages() if m.get("trigger_id") in set(trigger_ids)]

    def current():
        return tally(trigger_ids, kafka.read_json(topics["deliveries"]), outbox())

    def done() -> bool:
        return all(current().finals.get(t) for t in trigger_ids)

    log = tmp_path / "delivery.log"
    kafka.produce(topics["triggers"], waves[0])
    for kill_number in range(KILLS):
        started = time.time()
        job = start_job("email_delivery", config, log)
        try:
            before = len(outbox()) + len(kafka.read_json(topics["deliveries"]))
            wait_for(
                lambda before=before, started=started: (
                    _checkpointed_since(tmp_path / "checkpoints", started)
                    and (len(outbox()) + len(kafka.read_json(topics["deliveries"])) > before or done())
                ),
                [job],
                log,
                f"progress and a checkpoint before kill {kill_number + 1}",
            )
            if kill_number + 1 < len(waves):
                kafka.produce(topics["triggers"], waves[kill_number + 1])
            time.sleep(rng.uniform(0.0, 3.0))
        finally:
            kill(job)
        print(f"kill {kill_number + 1}: {current().summary()}")

    job = start_job("email_delivery", config, log)
    try:
        wait_for(
            done,
            [job],
            log,
            "a final outcome for every trigger",
            timeout_s=300,
            explain=lambda: current().summary(),
        )
        time.sleep(5)  # a few more checkpoints: anything sent or recorded twice would show by now
    finally:
        kill(job)

    final = current()
    records = kafka.read_json(topics["deliveries"])
    reasons = sorted({(r["status"], r["reason"], r["recovered"]) for r in records}, key=str)
    print(f"final: {final.summary()}\nrecords seen: {reasons}")
    assert final.problems(trigger_ids) == []
    assert ("deferred", "retry_later", False) in reasons, "no email waited out the outage: the test tested less"
    assert log.read_text(errors="replace").count("resuming from checkpoint") >= 1
