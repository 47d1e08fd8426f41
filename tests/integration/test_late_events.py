"""Events behind the watermark are dead-lettered with the reason, never dropped silently.

Both jobs run live (their own processes) on one topic with a single partition, so the order in
which the broker hands over events is the order they were sent.
"""

from __future__ import annotations

import pytest
from kafka import KafkaProducer

from tests.support.events import BEGINNING, DAY, MINUTE, as_json, page_viewed, product_added, product_viewed
from tests.support.jobs import job_config, running_job, wait_for

pytestmark = pytest.mark.integration


def test_late_events_reach_the_dead_letter_topic(kafka, run_id, tmp_path):
    topics = {"events": f"late-ev-{run_id}", "dead_letter": f"late-dlq-{run_id}", "triggers": f"late-tr-{run_id}"}
    kafka.create_topics(*topics.values(), partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    on_time = [product_added("ann", BEGINNING, product_id="boot", price=99.0)]
    on_time += [product_viewed("bo", BEGINNING + n * MINUTE, product_id="lamp") for n in range(3)]
    on_time.append(page_viewed("clock", BEGINNING + 3 * DAY))  # moves the watermark past everything above
    for event in on_time:
        producer.send(topics["events"], as_json(event))
    producer.flush()

    log = tmp_path / "jobs.log"
    cart_config = job_config("cart_abandonment", tmp_path, f"late-cart-{run_id}", topics, {})
    intent_config = job_config("intent_scoring", tmp_path, f"late-intent-{run_id}", topics, {})
    with (
        running_job("cart_abandonment", cart_config, log) as cart,
        running_job("intent_scoring", intent_config, log) as intent,
    ):
        # Both reminders for ann and bo's browse abandonment prove each job's watermark passed day 2.
        wait_for(lambda: len(kafka.read_all(topics["triggers"])) >= 3, [cart, intent], log, "three triggers")
        late = product_added("ann", BEGINNING + DAY, product_id="sock", price=5.0)
        producer.send(topics["events"], as_json(late))
        producer.flush()

        def both_jobs_reported_it() -> bool:
            stages = {d["stage"] for d in kafka.read_json(topics["dead_letter"])}
            return {f"late-cart-{run_id}.cart.late", f"late-intent-{run_id}.late"} <= stages

        wait_for(both_jobs_reported_it, [cart, intent], log, "the late event in the dead-letter topic")
    producer.close()

    dead = kafka.read_json(topics["dead_letter"])
    assert len(dead) == 2
    assert all(d["field"] == "timestamp" and d["error"].startswith("field 'timestamp': late") for d in dead)
    assert all('"sock"' in d["payload"] for d in dead)
    assert len(kafka.read_all(topics["triggers"])) == 3, "the late add must not re-open ann's cart"
