"""A multi-day history replayed at full speed through the collector gives exactly the batch models' triggers.

Hundreds of generated shoppers over three days (cart changes, removals, snapshots, purchases, carts filled in a
browser before a login, browsing sessions) go through a collector of the test's own into a 4-partition topic, as
fast as it takes them, sorted by time and batched like an import; the collector stamps each record with its
event's time. The shipped clickstream job reads the topic, its partitions at their own speeds; every trigger
must be the one the batch models compute from the records on the topic (cart reminders: person, reminder, due
time, cart, from ``demo/cart_model.py``; browse and high-intent triggers from the session model in
tests/support/histories.py): none missing, none extra, no trigger id twice, nothing dead-lettered. Once bounded
(no watermarks: every timer fires at the end of the input, in event-time order), once unbounded across a SIGKILL
and a restore (watermarks from the record timestamps, per partition).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.heartbeat import Heartbeat
from demo.cart_model import expected_triggers
from jobs.clickstream import DEFAULT_CONFIG
from jobs.config import ClickstreamConfig, load_config
from tests.support.collector import CollectorClient, own_collector
from tests.support.events import DAY, page_viewed
from tests.support.histories import (
    assert_the_models_triggers,
    cart_policy,
    generated_history,
    session_model,
    time_ms,
)
from tests.support.jobs import bounded_clickstream_config, job_config, run_clickstream_job, running_job, wait_for

pytestmark = pytest.mark.integration

SHOPPERS = 300
BATCH = 200


@pytest.fixture
def collector(sandbox, kafka, run_id: str, tmp_path: Path) -> Iterator[tuple[CollectorClient, str, str]]:
    """A collector of this test's own, writing to a fresh 4-partition topic."""
    topic, dlq = f"replay-events-{run_id}", f"replay-dlq-{run_id}"
    kafka.create_topics(topic, partitions=4, create_time=True)
    kafka.create_topics(dlq)
    env = {**sandbox.env(), "COLLECTOR_EVENTS_TOPIC": topic, "COLLECTOR_DLQ_TOPIC": dlq}
    # No heartbeats: the crash test pauses its replay, and a paused replay's clock would run on meanwhile
    # (heartbeats with a replay: tests/integration/test_collector_heartbeats.py, test_silent_shop.py).
    env["COLLECTOR_HEARTBEAT_INTERVAL"] = "0"
    with own_collector("collector-replay", sandbox.host, tmp_path, env) as client:
        yield client, topic, dlq


def test_a_full_speed_replay_through_the_collector_gives_the_batch_models_triggers(collector, kafka, run_id):
    collector, topic, dlq = collector
    docs = generated_history(_seed(run_id), run_id, SHOPPERS, browsing=True)
    # As in a topic a live collector beats on: heartbeats stamped now, before the replay's month-old events.
    # A bounded run makes no watermarks (it ends with Flink's final one), so none of the replay turns late.
    now_ms = int(time.time() * 1000)
    for partition in range(4):
        beat = Heartbeat("live", partition, now_ms).record()
        kafka.producer.send(topic, value=beat.value, partition=partition, timestamp_ms=now_ms)
    kafka.producer.flush()
    _send(collector, docs)
    on_topic = [doc for doc in map(json.loads, kafka.read_all(topic)) if doc.get("type") != "watermark"]
    assert len(on_topic) == len(docs)  # the collector itself writes no heartbeats here (see the fixture)

    topics = {"events": topic, "dead_letter": f"replay-jobdlq-{run_id}", "triggers": f"replay-triggers-{run_id}"}
    kafka.create_topics(topics["dead_letter"], topics["triggers"])
    run_clickstream_job(bounded_clickstream_config(f"replay-{run_id}", topics))

    _assert_the_models_triggers("replay", kafka, on_topic, topics, dlq)


def test_a_replay_killed_halfway_and_restored_from_its_checkpoint_gives_the_batch_models_triggers(
    collector, kafka, run_id, tmp_path
):
    """The same kind of history, the job as its own process: SIGKILL once it has fired some triggers and taken
    two checkpoints, the rest of the history sent while it is down, then restored from the last checkpoint."""
    collector, topic, dlq = collector
    docs = generated_history(_seed(run_id), run_id, SHOPPERS, browsing=True)
    middle = len(docs) // 2
    # After the history, clicks on every partition 30 days later: the watermark passes every reminder the model
    # owes (the last are due a cooldown of 7 days and a day after the history).
    end = time_ms(docs[-1]) + 30 * DAY
    clock = [page_viewed(f"{run_id}-clock{n}", end, message_id=f"{run_id}-clock{n}") for n in range(40)]
    for doc in clock:
        doc.pop("receivedAt", None)
    topics = {"events": topic, "dead_letter": f"replay-jobdlq-{run_id}", "triggers": f"replay-triggers-{run_id}"}
    kafka.create_topics(topics["dead_letter"], topics["triggers"])
    _send(collector, docs[:middle])

    checkpoints = tmp_path / "checkpoints"
    flink = {
        "execution.checkpointing.interval": "2s",
        "execution.checkpointing.dir": checkpoints.as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
    }
    log = tmp_path / "job.log"

    def completed() -> list[Path]:
        return sorted((p.parent for p in checkpoints.glob("*/chk-*/_metadata")), key=lambda p: int(p.name[4:]))

    def crash_ready() -> bool:  # Flink keeps only the newest checkpoint: wait for number 2 or later
        done = completed()
        return len(kafka.read_json(topics["triggers"])) >= 50 and bool(done) and int(done[-1].name[4:]) >= 2

    first = job_config("clickstream", tmp_path, f"replay-{run_id}", topics, flink)
    with running_job("clickstream", first, log) as job:
        wait_for(crash_ready, [job], log, "50 triggers and two checkpoints")
    fired_before, last = len(kafka.read_json(topics["triggers"])), completed()[-1]

    _send(collector, docs[middle:] + clock)
    on_topic = [doc for doc in map(json.loads, kafka.read_all(topic)) if doc.get("type") != "watermark"]
    cfg = _shipped()
    owed = len(expected_triggers(on_topic, cart_policy(cfg))) + len(session_model(on_topic, cfg))
    restore = {**flink, "execution.state-recovery.path": last.as_uri()}
    restored = job_config("clickstream", tmp_path, f"replay-{run_id}", topics, restore)
    with running_job("clickstream", restored, log) as job:
        wait_for(lambda: len(kafka.read_json(topics["triggers"])) >= owed, [job], log, f"{owed} triggers")
        time.sleep(6)  # a few more checkpoints: anything emitted twice would be committed by now
    print(f"killed after {fired_before} committed triggers, restored from {last.name}")
    _assert_the_models_triggers("replay with a crash", kafka, on_topic, topics, dlq)


def _seed(run_id: str) -> int:
    """A new history every run (the failure message names the seed, to replay it with ``generated_history``)."""
    seed = int(run_id, 16)
    print(f"history seed {seed}")
    return seed


def _send(collector: CollectorClient, docs: list[dict[str, Any]]) -> None:
    for start in range(0, len(docs), BATCH):
        answer = collector.post("batch", {"batch": docs[start : start + BATCH]})
        assert answer.status_code == 200, answer.text


def _shipped() -> ClickstreamConfig:
    return load_config(DEFAULT_CONFIG, ClickstreamConfig)


def _assert_the_models_triggers(
    what: str, kafka: Any, on_topic: list[dict[str, Any]], topics: dict[str, str], collector_dlq: str
) -> None:
    """Nothing dead-lettered, and every trigger on the topic is the models' and the models' are all there."""
    assert kafka.read_json(topics["dead_letter"]) == []
    assert kafka.read_json(collector_dlq) == []
    reminders, _ = assert_the_models_triggers(what, kafka.read_json(topics["triggers"]), on_topic, _shipped())
    assert len(reminders) > SHOPPERS // 3  # the history really abandons carts
