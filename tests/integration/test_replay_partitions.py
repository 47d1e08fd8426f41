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

from connectors.kafka import kafka_sink, kafka_source
from demo.clickstream import sample_clickstream
from jobs.cart_abandonment import DEFAULT_CONFIG, build
from jobs.config import CartAbandonmentConfig, load_config
from jobs.flink_env import make_env
from jobs.runner import JobSinks

pytestmark = pytest.mark.integration

SHOPPERS = 40  # four stories: 10 abandon a cart and 10 change and abandon one, so 20 carts × 2 reminders
DAY_MS = 86_400_000


def test_a_replay_over_more_partitions_than_subtasks_loses_no_event(kafka, run_id):
    cfg = load_config(DEFAULT_CONFIG, CartAbandonmentConfig, {"kafka.bounded": True})
    topics = {"events": f"replay-{run_id}", "dead_letter": f"replay-dlq-{run_id}", "triggers": f"replay-tr-{run_id}"}
    cfg = cfg.model_copy(
        update={
            "job_name": f"replay-{run_id}",
            "kafka": cfg.kafka.model_copy(update={"group_id": f"replay-{run_id}", "starting_offsets": "earliest"}),
            "topics": cfg.topics.model_copy(update=topics),
            "redis": cfg.redis.model_copy(update={"key_prefix": f"replay-{run_id}:profile:"}),
        }
    )
    kafka.create_topics(topics["events"], partitions=4)
    kafka.create_topics(topics["dead_letter"], topics["triggers"])
    events = sample_clickstream(SHOPPERS, run_id, int(time.time() * 1000) - 2 * DAY_MS)
    kafka.produce(topics["events"], events)  # dicts: keyed by userId, as the collector keys them

    env = make_env(cfg.job_name, {**cfg.flink, "parallelism.default": 2})
    sinks = JobSinks(
        triggers=kafka_sink(cfg.kafka, topics["triggers"], exactly_once=True, transactional_id_prefix=cfg.job_name),
        dead_letter=kafka_sink(cfg.kafka, topics["dead_letter"], exactly_once=False, transactional_id_prefix=""),
    )
    build(env, cfg, kafka_source(cfg.kafka, topics["events"]), sinks)
    env.execute(cfg.job_name)

    dead = kafka.read_json(topics["dead_letter"])
    assert [(d["error"], json.loads(d["payload"]).get("timestamp")) for d in dead] == []
    triggers = kafka.read_json(topics["triggers"])
    assert len(triggers) == 40
    assert len({t["trigger_id"] for t in triggers}) == 40
