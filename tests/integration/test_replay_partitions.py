"""A replay of a day read by fewer subtasks than partitions: every event counts, none is late.

The topic has 4 partitions and the job is configured with parallelism 2. A subtask reading two partitions
would interleave them in fetch-sized runs and make its watermark from whichever ran ahead, dead-lettering
the other's events as late (about 60 of these 190); so the job runs with one subtask per partition
(``kafka.parallelism_from_partitions``, jobs/clickstream.py), and a bounded replay uses no idleness. The
sample is the demo's: 40 shoppers over 80 minutes, each keyed by person.
"""

from __future__ import annotations

import json
import time

import pytest

from demo.clickstream import sample_clickstream
from tests.support.jobs import bounded_cart_config, run_cart_job

pytestmark = pytest.mark.integration

SHOPPERS = 40  # four stories: 10 abandon a cart and 10 change and abandon one, so 20 carts × 2 reminders
DAY_MS = 86_400_000


def test_a_replay_over_more_partitions_than_subtasks_loses_no_event(kafka, run_id):
    topics = {"events": f"replay-{run_id}", "dead_letter": f"replay-dlq-{run_id}", "triggers": f"replay-tr-{run_id}"}
    cfg = bounded_cart_config(f"replay-{run_id}", topics)
    kafka.create_topics(topics["events"], partitions=4)
    kafka.create_topics(topics["dead_letter"], topics["triggers"])
    events = sample_clickstream(SHOPPERS, run_id, int(time.time() * 1000) - 2 * DAY_MS)
    kafka.produce(topics["events"], events)  # dicts: keyed by userId, as the collector keys them

    run_cart_job(cfg, {"parallelism.default": 2})

    dead = kafka.read_json(topics["dead_letter"])
    assert [(d["error"], json.loads(d["payload"]).get("timestamp")) for d in dead] == []
    triggers = kafka.read_json(topics["triggers"])
    assert len(triggers) == 40
    assert len({t["trigger_id"] for t in triggers}) == 40
