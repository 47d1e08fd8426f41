"""Events behind the watermark are dead-lettered with the reason, never dropped silently.

The clickstream job runs live (its own process) on one topic with a single partition, so the order in which the
broker hands over events is the order they were sent; each record is stamped with its event's time, from which
the job's Kafka source makes its watermarks (as the collector stamps them). A late record is dead-lettered by
the per-person step, once per record that reaches it: an anonymous cart event goes both through the login step
(for the cart) and straight on (for the sessions), so it is reported twice.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.support.events import (
    BEGINNING,
    DAY,
    MINUTE,
    anonymous,
    page_viewed,
    product_added,
    product_viewed,
)
from tests.support.jobs import job_config, running_job, wait_for

pytestmark = pytest.mark.integration


def test_late_events_reach_the_dead_letter_topic(kafka, run_id, tmp_path):
    topics = {"events": f"late-ev-{run_id}", "dead_letter": f"late-dlq-{run_id}", "triggers": f"late-tr-{run_id}"}
    kafka.create_topics(topics["events"], partitions=1, create_time=True)
    kafka.create_topics(topics["dead_letter"], topics["triggers"], partitions=1)
    on_time = [product_added("ann", BEGINNING, product_id="boot", price=99.0)]
    on_time += [product_viewed("bo", BEGINNING + n * MINUTE, product_id="lamp") for n in range(3)]
    on_time.append(page_viewed("clock", BEGINNING + 3 * DAY))  # moves the watermark past everything above
    kafka.produce(topics["events"], on_time)

    log = tmp_path / "job.log"
    name = f"late-{run_id}"
    config = job_config("clickstream", tmp_path, name, topics, {})
    late = product_added("ann", BEGINNING + DAY, product_id="sock", price=5.0)
    late_anonymous = anonymous(product_added("x", BEGINNING + DAY, product_id="scarf", price=7.0), f"browser-{run_id}")
    with running_job("clickstream", config, log) as job:
        # Both of ann's reminders and bo's browse abandonment prove the job's watermark passed day 2.
        wait_for(lambda: len(kafka.read_all(topics["triggers"])) >= 3, [job], log, "three triggers")
        kafka.produce(topics["events"], [late, late_anonymous])

        def both_reported() -> bool:
            return len(kafka.read_all(topics["dead_letter"])) >= 3

        wait_for(both_reported, [job], log, "the late events in the dead-letter topic")

    dead = kafka.read_json(topics["dead_letter"])
    assert {d["stage"] for d in dead} == {f"{name}.late"}
    assert all(d["field"] == "timestamp" and d["error"].startswith("field 'timestamp': late") for d in dead)
    per_event = Counter(json.loads(d["payload"])["messageId"] for d in dead)
    # ann's add reaches only the per-person step; the browser's passes the login step too: two records
    assert per_event == {late["messageId"]: 1, late_anonymous["messageId"]: 2}
    triggers = kafka.read_json(topics["triggers"])
    assert sorted((t["person_id"], t["trigger_type"]) for t in triggers) == [
        ("ann", "cart_abandonment"),
        ("ann", "cart_abandonment"),
        ("bo", "browse_abandonment"),
    ], "a late add must not re-open ann's cart"
