"""A multi-day history replayed at full speed through the collector gives exactly the batch model's reminders.

Hundreds of generated shoppers over three days (cart changes, removals, snapshots, purchases, carts filled in a
browser before a login) go through a collector of the test's own into a 4-partition topic, as fast as it takes
them, sorted by time and batched like an import. The shipped cart job reads the topic bounded, one subtask per
partition, so the partitions run at their own speeds; every trigger (person, reminder, due time, cart) must be
the one ``demo/cart_model.py`` computes from the records on the topic: none missing, none extra, no
trigger id twice, nothing dead-lettered.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from collector.heartbeat import Heartbeat
from demo.cart_model import ModelPolicy, ModelTrigger, expected_triggers
from jobs.cart_abandonment import DEFAULT_CONFIG
from jobs.config import CartAbandonmentConfig, load_config
from tests.support.collector import CollectorClient, own_collector
from tests.support.events import (
    BEGINNING,
    DAY,
    MINUTE,
    anonymous,
    cart_viewed,
    login,
    order_completed,
    page_viewed,
    product,
    product_added,
    product_removed,
)
from tests.support.jobs import bounded_cart_config, job_config, run_cart_job, running_job, wait_for

pytestmark = pytest.mark.integration

SHOPPERS = 300
DAYS = 3
BATCH = 200


def generated_history(seed: int, run_id: str) -> list[dict[str, Any]]:
    """Seeded shoppers: most fill a cart, some change it over days, some buy, 40 % start in a browser."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    for shopper in range(SHOPPERS):
        user, browser = f"{run_id}-u{shopper}", f"{run_id}-b{shopper}"
        start = BEGINNING + rng.randrange(DAYS * DAY)
        times = sorted(start + rng.randrange(2 * DAY) // MINUTE * MINUTE for _ in range(rng.randint(1, 6)))
        login_at = start + rng.randrange(DAY) if rng.random() < 0.4 else None
        for n, t in enumerate(times):
            mid = f"{user}-{n}"
            pid = rng.choice(["shoe", "hat", "sock", "belt"])
            kind = rng.choices(["add", "remove", "snapshot", "order"], weights=[6, 2, 1, 1])[0]
            if kind == "add":
                doc = product_added(user, t, product_id=pid, quantity=rng.randint(1, 2), message_id=mid)
            elif kind == "remove":
                doc = product_removed(user, t, product_id=pid, message_id=mid)
            elif kind == "snapshot":
                doc = cart_viewed(user, t, products=[product(pid, quantity=2)], message_id=mid)
            else:
                doc = order_completed(user, t, message_id=mid)
            docs.append(anonymous(doc, browser) if login_at is not None and t < login_at else doc)
        if login_at is not None:
            docs.append(login(user, login_at, browser))
    for doc in docs:  # as an SDK sends them: the collector resolves identities and stamps receivedAt itself
        doc.pop("personId", None)
        doc.pop("receivedAt", None)
    return sorted(docs, key=lambda doc: doc["timestamp"])


@pytest.fixture
def collector(sandbox, kafka, run_id: str, tmp_path: Path) -> Iterator[tuple[CollectorClient, str, str]]:
    """A collector of this test's own, writing to a fresh 4-partition topic."""
    topic, dlq = f"replay-events-{run_id}", f"replay-dlq-{run_id}"
    kafka.create_topics(topic, partitions=4)
    kafka.create_topics(dlq)
    env = {**sandbox.env(), "COLLECTOR_EVENTS_TOPIC": topic, "COLLECTOR_DLQ_TOPIC": dlq}
    # No heartbeats: the crash test pauses its replay, and a paused replay's clock would run on meanwhile
    # (heartbeats with a replay: tests/integration/test_collector_heartbeats.py, test_silent_shop.py).
    env["COLLECTOR_HEARTBEAT_INTERVAL"] = "0"
    with own_collector("collector-replay", sandbox.host, tmp_path, env) as client:
        yield client, topic, dlq


def test_a_full_speed_replay_through_the_collector_gives_the_batch_models_triggers(collector, kafka, run_id):
    collector, topic, dlq = collector
    docs = generated_history(seed=_seed(run_id), run_id=run_id)
    # As in a topic a live collector beats on: heartbeats stamped now, before the replay's month-old events.
    # A bounded run drops them (it ends with its own final watermark), so none of the replay turns late.
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
    run_cart_job(bounded_cart_config(f"replay-{run_id}", topics))

    _assert_the_models_triggers("replay", kafka, on_topic, topics, dlq)


def test_a_replay_killed_halfway_and_restored_from_its_checkpoint_gives_the_batch_models_triggers(
    collector, kafka, run_id, tmp_path
):
    """The same kind of history, the job as its own process: SIGKILL once it has fired some reminders and taken
    two checkpoints, the rest of the history sent while it is down, then restored from the last checkpoint."""
    collector, topic, dlq = collector
    docs = generated_history(seed=_seed(run_id), run_id=run_id)
    middle = len(docs) // 2
    # After the history, clicks on every partition 30 days later: the watermark passes every reminder the model
    # owes (the last are due a cooldown of 7 days and a day after the history).
    end = _time(docs[-1]) + 30 * DAY
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

    first = job_config("cart_abandonment", tmp_path, f"replay-{run_id}", topics, flink)
    with running_job("cart_abandonment", first, log) as job:
        wait_for(crash_ready, [job], log, "50 reminders and two checkpoints")
    fired_before, last = len(kafka.read_json(topics["triggers"])), completed()[-1]

    _send(collector, docs[middle:] + clock)
    on_topic = [doc for doc in map(json.loads, kafka.read_all(topic)) if doc.get("type") != "watermark"]
    owed = len(expected_triggers(on_topic, _policy()))
    restore = {**flink, "execution.state-recovery.path": last.as_uri()}
    restored = job_config("cart_abandonment", tmp_path, f"replay-{run_id}", topics, restore)
    with running_job("cart_abandonment", restored, log) as job:
        wait_for(lambda: len(kafka.read_json(topics["triggers"])) >= owed, [job], log, f"{owed} reminders")
        time.sleep(6)  # a few more checkpoints: anything emitted twice would be committed by now
    print(f"killed after {fired_before} committed reminders, restored from {last.name}")
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


def _time(doc: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(doc["timestamp"]).timestamp() * 1000)


def _policy() -> ModelPolicy:
    """The shipped config's reminder series, as the model takes it."""
    cart = load_config(DEFAULT_CONFIG, CartAbandonmentConfig).cart
    return ModelPolicy(tuple(r.after for r in cart.reminders), cart.cooldown, cart.max_reminders)


def _assert_the_models_triggers(
    what: str, kafka: Any, on_topic: list[dict[str, Any]], topics: dict[str, str], collector_dlq: str
) -> None:
    """Every trigger on the topic is the model's and the model's are all there: printed, then asserted."""
    triggers = kafka.read_json(topics["triggers"])
    fired = sorted(
        ModelTrigger(
            t["person_id"],
            t["reminder_index"],
            t["fired_at_ms"],
            tuple(sorted((i["product_id"], i["quantity"]) for i in t["items"])),
        )
        for t in triggers
    )
    expected = expected_triggers(on_topic, _policy())
    missing = sorted(set(expected) - set(fired))
    extra = sorted(set(fired) - set(expected))
    duplicates = len(triggers) - len({t["trigger_id"] for t in triggers})
    print(
        f"{what}: {len(on_topic)} events, expected {len(expected)}, fired {len(fired)}, missing {len(missing)}, "
        f"extra {len(extra)}, duplicate ids {duplicates}"
    )
    assert kafka.read_json(topics["dead_letter"]) == []
    assert kafka.read_json(collector_dlq) == []
    assert (missing[:5], extra[:5]) == ([], []), f"{len(missing)} missing, {len(extra)} extra (seed printed above)"
    assert duplicates == 0
    assert len(triggers) == len(expected) > SHOPPERS // 3  # the history really abandons carts
