"""A backlog read at full speed by one subtask from four partitions: exactly the batch models' triggers, none late.

The clickstream job's Kafka source makes the watermarks from the record timestamps (the event times, as the
collector stamps them), per partition, and a subtask's watermark is the least of its partitions'. So however the
consumer interleaves the partitions (in fetch-sized runs: one partition's three days may come before another's
first hour), no event is behind the watermark of its own partition, and the job no longer needs a subtask per
partition. (When the watermarks were made after parsing, per subtask, a subtask reading two partitions
dead-lettered about a third of a replay as late; this test, run once on a variant of the job that makes them
there, saw 1,386 late dead letters and 208 of 685 triggers.)

Here: a seeded three-day history of 300 shoppers (carts changed over days, purchases, carts filled in a browser
before a login, browsing sessions) is written to a 4-partition topic, keyed by person and in event-time order
per partition, with clicks 30 days later on every partition to move event time past every reminder and session;
then the job starts, unbounded, with parallelism 1 (``kafka.parallelism_from_partitions: false``) and the shipped
watermark settings, and reads it all as fast as it can. Every trigger must be the batch models' (cart reminders
from ``demo/cart_model.py``, browse and high-intent triggers from the session model), none missing, none extra,
no trigger id twice, and nothing dead-lettered.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from demo.cart_model import expected_triggers
from jobs.clickstream import DEFAULT_CONFIG
from jobs.config import ClickstreamConfig, load_config
from sandbox.settings import PROJECT_ROOT
from tests.support.events import DAY, as_json, page_viewed
from tests.support.histories import assert_the_models_triggers, cart_policy, generated_history, session_model, time_ms
from tests.support.jobs import job_config, running_job, wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 4


def test_one_subtask_reading_four_partitions_at_full_speed_gives_the_batch_models_triggers(kafka, run_id, tmp_path):
    topics = {"events": f"parts-{run_id}", "dead_letter": f"parts-dlq-{run_id}", "triggers": f"parts-tr-{run_id}"}
    kafka.create_topics(topics["events"], partitions=PARTITIONS, create_time=True)
    kafka.create_topics(topics["dead_letter"], topics["triggers"])
    seed = int(run_id, 16)
    print(f"\nhistory seed {seed}")
    docs = generated_history(seed, run_id, browsing=True)
    kafka.produce(topics["events"], docs)  # keyed by person, stamped with the event time, in event-time order
    end = time_ms(docs[-1]) + 30 * DAY
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for partition in range(PARTITIONS):
        clock = page_viewed(f"{run_id}-clock{partition}", end, message_id=f"{run_id}-clock{partition}")
        producer.send(topics["events"], value=as_json(clock), partition=partition, timestamp_ms=end)
    producer.close()
    on_topic = kafka.read_json(topics["events"])
    per_partition = _records_per_partition(kafka.bootstrap, topics["events"])
    assert min(per_partition) > 100, per_partition  # every partition holds a share of the history

    name = f"parts-{run_id}"
    config = job_config(
        "clickstream", tmp_path, name, topics, {"parallelism.default": 1}, {"parallelism_from_partitions": False}
    )
    _shipped_event_time(config)
    cfg = load_config(config, ClickstreamConfig)
    models = len(expected_triggers(on_topic, cart_policy(cfg))) + len(session_model(on_topic, cfg))
    log = tmp_path / "job.log"
    started = time.monotonic()
    with running_job("clickstream", config, log) as job:

        def explain() -> str:
            dead = kafka.read_json(topics["dead_letter"])
            return f"{len(kafka.read_all(topics['triggers']))} of {models} triggers; {len(dead)} dead letters"

        wait_for(
            lambda: len(kafka.read_all(topics["triggers"])) >= models, [job], log, f"{models} triggers", 300, explain
        )
        took = time.monotonic() - started
        time.sleep(5)  # a few more checkpoints: a trigger fired twice or a late dead letter would be committed by now
    print(f"{per_partition} records on {PARTITIONS} partitions read by one subtask; all triggers in {took:.0f} s")

    subtasks = _subtasks(tmp_path / "flink")
    assert subtasks == {1}, f"the job ran with {subtasks} subtasks per operator, not 1"
    assert kafka.read_json(topics["dead_letter"]) == []
    assert_the_models_triggers("one subtask, four partitions", kafka.read_json(topics["triggers"]), on_topic, cfg)


def _records_per_partition(bootstrap: str, topic: str) -> list[int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return [offset for _, offset in sorted(consumer.end_offsets(partitions).items())]
    finally:
        consumer.close()


def _subtasks(flink_logs: Path) -> set[int]:
    """How many subtasks each operator of the job ran with, as its JobMaster logged them being scheduled."""
    found: set[int] = set()
    for path in flink_logs.glob("*.log*"):
        for line in path.read_text(errors="replace").splitlines():
            if "switched from CREATED to SCHEDULED" in line:
                found |= {int(n) for n in re.findall(r"\(\d+/(\d+)\)", line)}
    return found


def _shipped_event_time(config: Path) -> None:
    """Back to the shipped ``event_time`` (``job_config`` makes idleness 2 s): the job as it runs in production."""
    shipped = yaml.safe_load((PROJECT_ROOT / DEFAULT_CONFIG).read_text())["event_time"]
    cfg = yaml.safe_load(config.read_text())
    cfg["event_time"] = shipped
    config.write_text(yaml.safe_dump(cfg))
