"""The Kafka broker crashes for 30 s while the collector takes traffic and the clickstream job runs (issue 9).

Everything runs against a broker of the test's own (same jars as the sandbox's, its own ports and data): a
collector of its own in front of it and the shipped clickstream job as its own process (as under
``make run``), checkpointing every 2 s with a fixed-delay restart strategy, so Flink itself restarts the job
from its latest checkpoint if the outage fails it. Redis is the sandbox's.

1. The job is running (a checkpoint completed); a client sends shoppers' carts through the collector's
   ``/v1/batch``, one round of clicks at a time in event-time order, resending a refused batch after its
   ``Retry-After`` (what Segment's SDKs do).
2. Once reminders are committed, the broker is SIGKILLed; the client keeps sending (503s with
   ``Retry-After``, counted) for the 30 s it is down; then the broker is started again on the same data.
3. The client resends until 200 and sends the rest; clicks 30 days later move event time past every reminder.

Then: every acknowledged event is on the topic exactly once (by ``messageId``), nothing else of the test's is,
the job resumed and fired exactly the reminders the batch model (``demo/cart_model.py``) computes over the
acknowledged events (person, reminder, due time, cart), no trigger id twice, nothing dead-lettered.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from demo.cart_model import ModelTrigger, expected_triggers
from jobs.clickstream import DEFAULT_CONFIG
from jobs.config import ClickstreamConfig, load_config
from sandbox.kafka import create_topics, kafka_process
from sandbox.settings import PROJECT_ROOT, SandboxSettings
from tests.support.broker import crash, private_broker
from tests.support.collector import CollectorClient, own_collector
from tests.support.events import BEGINNING, DAY, MINUTE, order_completed, page_viewed, product_added, product_removed
from tests.support.histories import as_model_trigger, cart_policy
from tests.support.jobs import job_config, running_job, wait_for
from tests.support.kafka import KafkaTestClient

pytestmark = pytest.mark.integration

# The shipped topics (flink-conf/topics.yaml: partitions and LogAppendTime) on the private broker.
TOPICS = {"events": "clickstream.events", "dead_letter": "clickstream.dlq", "triggers": "email.triggers"}
OUTAGE_S = 30.0
SHOPPERS = 150
ROUNDS = 90  # one batch per round
ROUND_MS = 20 * MINUTE  # event time between rounds: reminder 1 (1 h) is due 3 rounds after a change
SPACING_MS = 100  # between the clicks of one round: a round spans far less than max_out_of_orderness (30 s)
PAUSE_S = 0.25  # between rounds, wall time
OUTAGE_AFTER_ROUNDS = 25
RESEND_DEADLINE_S = 240.0  # the outage, and a restart that may take a minute on a busy machine


@pytest.fixture
def broker(sandbox: SandboxSettings, tmp_path: Path) -> Iterator[SandboxSettings]:
    with private_broker(sandbox, tmp_path / "broker") as settings:
        kafka_process(settings).start()
        create_topics(settings)
        yield settings


@pytest.fixture
def collector(sandbox: SandboxSettings, broker: SandboxSettings, tmp_path: Path) -> Iterator[CollectorClient]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": broker.kafka_bootstrap,
        "REDIS_URL": sandbox.redis_url,
        "COLLECTOR_PRODUCE_TIMEOUT": "3s",
        "COLLECTOR_KAFKA_CONNECT_TIMEOUT": "2s",
        "COLLECTOR_RETRY_AFTER": "1s",
        # Heartbeats on (as shipped), but no event clock shared through the sandbox's Redis with its collector,
        # whose topic has the same name: this one's clock follows this test's (month-old) clicks only.
        "COLLECTOR_HEARTBEAT_RESUME_WITHIN": "0",
    }
    with own_collector("collector-outage", sandbox.host, tmp_path / "collector", env, wait_for_kafka=True) as client:
        yield client


@dataclass
class Sent:
    """What the client saw; the sender thread writes, the test reads once it has joined."""

    events: set[str] = field(default_factory=set)
    acknowledged: list[str] = field(default_factory=list)
    requests: int = 0
    refused: int = 0  # 503s
    retry_after: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # no HTTP answer at all
    rounds_done: int = 0
    refused_during_outage: int = 0
    outage: threading.Event = field(default_factory=threading.Event)


def _history(run_id: str, seed: int) -> list[list[dict[str, Any]]]:
    """Rounds of clicks: each shopper adds, removes or buys in 1-4 rounds of a 5-hour window."""
    rng = random.Random(seed)
    rounds: list[list[tuple[str, str, str, int]]] = [[] for _ in range(ROUNDS)]
    for shopper in range(SHOPPERS):
        start = rng.randrange(ROUNDS - 4)
        window = range(start, min(ROUNDS, start + 15))
        for step, r in enumerate(sorted(rng.sample(window, k=min(len(window), rng.randint(1, 4))))):
            kind = rng.choices(["add", "remove", "order"], weights=[6, 2, 1])[0]
            rounds[r].append((f"{run_id}-u{shopper}", kind, rng.choice(["shoe", "hat", "sock"]), step))
    batches = []
    for r, clicks in enumerate(rounds):
        rng.shuffle(clicks)
        docs = []
        for i, (user, kind, pid, step) in enumerate(clicks):
            t, mid = BEGINNING + r * ROUND_MS + i * SPACING_MS, f"{user}-{step}"
            if kind == "add":
                doc = product_added(user, t, product_id=pid, quantity=rng.randint(1, 2), message_id=mid)
            elif kind == "remove":
                doc = product_removed(user, t, product_id=pid, message_id=mid)
            else:
                doc = order_completed(user, t, message_id=mid)
            docs.append(_as_sdk_sends(doc))
        batches.append(docs)
    return batches


def _clock(run_id: str, t_ms: int) -> list[dict[str, Any]]:
    """Clicks of 40 people (so on every partition) at ``t_ms``: the watermark passes every reminder owed."""
    return [_as_sdk_sends(page_viewed(f"{run_id}-clock{n}", t_ms, message_id=f"{run_id}-clock{n}")) for n in range(40)]


def _as_sdk_sends(doc: dict[str, Any]) -> dict[str, Any]:
    doc.pop("receivedAt", None)  # the collector stamps it
    return doc


def _deliver(client: CollectorClient, docs: list[dict[str, Any]], sent: Sent, stop: threading.Event) -> None:
    """Resend the same batch, honouring ``Retry-After``, until the collector acknowledges it."""
    ids = [doc["messageId"] for doc in docs]
    sent.events.update(ids)
    body = {"batch": docs}
    deadline = time.monotonic() + RESEND_DEADLINE_S
    while not stop.is_set():
        assert time.monotonic() < deadline, f"a batch was not accepted within {RESEND_DEADLINE_S:.0f} s"
        try:
            answer = client.post("batch", body)
        except requests.RequestException:
            sent.errors += 1
            stop.wait(1.0)
            continue
        sent.requests += 1
        if answer.status_code == 200:
            sent.acknowledged.extend(ids)
            return
        assert answer.status_code == 503, f"{answer.status_code}: {answer.text}"
        assert answer.json()["success"] is False, answer.text
        retry_after = int(answer.headers["Retry-After"])
        assert retry_after >= 1
        sent.refused += 1
        sent.refused_during_outage += sent.outage.is_set()
        sent.retry_after[retry_after] += 1
        stop.wait(retry_after)


def _send_rounds(
    client: CollectorClient, batches: list[list[dict[str, Any]]], sent: Sent, stop: threading.Event
) -> None:
    for docs in batches:
        if stop.is_set():
            return
        if docs:
            _deliver(client, docs, sent, stop)
        sent.rounds_done += 1
        stop.wait(PAUSE_S)


def _reminders(triggers: list[dict[str, Any]]) -> set[ModelTrigger]:
    """The cart reminders among ``triggers``, as the cart model writes them."""
    return {as_model_trigger(t) for t in triggers if t["trigger_type"] == "cart_abandonment"}


def _shipped_idleness(config: Path) -> None:
    """Back to the shipped ``event_time.idleness`` (1 m; ``job_config`` makes it 2 s). Heartbeats keep every
    partition busy, and after a restart from a checkpoint the source subtasks start reading seconds apart: with
    2 s, one that starts late is idle meanwhile, and the others' watermark makes its replayed events late."""
    shipped = yaml.safe_load((PROJECT_ROOT / DEFAULT_CONFIG).read_text())["event_time"]["idleness"]
    cfg = yaml.safe_load(config.read_text())
    cfg["event_time"]["idleness"] = shipped
    config.write_text(yaml.safe_dump(cfg))


def _completed_checkpoints(root: Path) -> list[Path]:
    return sorted((p.parent for p in root.glob("*/chk-*/_metadata")), key=lambda p: int(p.name.split("-")[1]))


def _restarts(flink_logs: Path) -> int:
    """How often Flink restarted the job (its JobMaster logs each switch to RESTARTING)."""
    text = "".join(p.read_text(errors="replace") for p in flink_logs.glob("*.log*")) if flink_logs.is_dir() else ""
    return text.count("to RESTARTING")


def test_broker_crash_mid_traffic_loses_nothing_acknowledged_and_the_cart_job_resumes(
    sandbox, broker, collector, run_id, tmp_path
):
    seed = int(run_id, 16)
    print(f"\nhistory seed {seed}")
    batches = _history(run_id, seed)
    end = BEGINNING + ROUNDS * ROUND_MS
    kafka = KafkaTestClient(broker.kafka_bootstrap)
    log, checkpoints, flink_logs = tmp_path / "job.log", tmp_path / "checkpoints", tmp_path / "flink"
    flink = {
        "execution.checkpointing.interval": "2s",
        "execution.checkpointing.dir": checkpoints.as_uri(),
        "execution.checkpointing.savepoint-dir": (tmp_path / "savepoints").as_uri(),
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": 1000,
        "restart-strategy.fixed-delay.delay": "2s",
    }
    name = f"outage-{run_id}"
    config = job_config("clickstream", tmp_path, name, TOPICS, flink, {"bootstrap_servers": broker.kafka_bootstrap})
    _shipped_idleness(config)
    sent, stop = Sent(), threading.Event()
    started = time.monotonic()

    def triggers() -> list[dict[str, Any]]:
        return kafka.read_json(TOPICS["triggers"])

    try:
        with running_job("clickstream", config, log) as job, ThreadPoolExecutor(1) as pool:
            try:
                wait_for(lambda: bool(_completed_checkpoints(checkpoints)), [job], log, "a first checkpoint", 120)
                sender = pool.submit(_send_rounds, collector, batches, sent, stop)

                # 1-2. traffic and committed reminders; then the broker crashes mid-traffic and stays down 30 s
                def ready_for_outage() -> bool:
                    if sender.done():
                        sender.result()  # raises what failed in the sender
                    return sent.rounds_done >= OUTAGE_AFTER_ROUNDS and bool(triggers())

                wait_for(ready_for_outage, [job], log, f"{OUTAGE_AFTER_ROUNDS} rounds sent and a reminder", 120)
                before = len(triggers())
                rounds_before = sent.rounds_done
                crash(kafka_process(broker))
                sent.outage.set()
                acknowledged_before = len(sent.acknowledged)  # a request the broker took just before it died
                time.sleep(OUTAGE_S)
                acknowledged_in_outage = len(sent.acknowledged) - acknowledged_before
                sent.outage.clear()
                kafka_process(broker).start()
                back = time.monotonic()

                # 3. the rest of the traffic, then event time past every reminder
                sender.result(timeout=RESEND_DEADLINE_S + ROUNDS * (PAUSE_S + 3))
                sent_again = time.monotonic() - back
                _deliver(collector, _clock(run_id, end + 30 * DAY), sent, stop)

                acknowledged = set(sent.acknowledged)
                on_topic = [d for d in kafka.read_json(TOPICS["events"]) if d.get("messageId", "").startswith(run_id)]
                policy = cart_policy(load_config(DEFAULT_CONFIG, ClickstreamConfig))
                owed = expected_triggers([d for d in on_topic if d["messageId"] in acknowledged], policy)

                def explain() -> str:
                    now = _reminders(triggers())
                    dead = Counter(json.loads(d)["error"].split(":")[0] for d in kafka.read_all(TOPICS["dead_letter"]))
                    return (
                        f"{len(now)} of {len(owed)} committed, missing {sorted(set(owed) - now)[:5]}, "
                        f"extra {sorted(now - set(owed))[:5]}; dead letters {dict(dead)}; "
                        f"Flink restarts {_restarts(flink_logs)}"
                    )

                what = f"{len(owed)} committed reminders after the outage"
                wait_for(lambda: len(triggers()) >= len(owed), [job], log, what, 120, explain=explain)
                time.sleep(6)  # a few more checkpoints: anything emitted twice would be committed by now
                fired = triggers()
                dead = kafka.read_all(TOPICS["dead_letter"])
                restarts = _restarts(flink_logs)
            finally:
                stop.set()  # the sender thread ends before the pool waits for it, also when the test fails
    finally:
        kafka.close()

    per_message = Counter(doc["messageId"] for doc in on_topic)
    fired_set = _reminders(fired)
    fired_ids = Counter(t["trigger_id"] for t in fired)
    missing, extra = sorted(set(owed) - fired_set), sorted(fired_set - set(owed))
    print(
        f"events sent {len(sent.events)}, acknowledged {len(acknowledged)} "
        f"(in {sent.requests} requests: {sent.refused} answered 503, {sent.refused_during_outage} of them while the "
        f"broker was down, Retry-After {dict(sent.retry_after)}; {sent.errors} without an answer), "
        f"acknowledged while down {acknowledged_in_outage}; "
        f"on the topic {len(on_topic)} ({len(per_message)} distinct)\n"
        f"outage after round {rounds_before} of {ROUNDS}, {OUTAGE_S:.0f} s; the rest sent {sent_again:.0f} s after "
        f"the broker was back; Flink restarts {restarts}\n"
        f"triggers expected {len(owed)} ({len({(t.person_id, t.reminder_index) for t in owed})} (person, reminder)), "
        f"fired {len(fired)} ({before} before the outage), missing {len(missing)}, extra {len(extra)}, "
        f"trigger ids twice {sum(n > 1 for n in fired_ids.values())}; dead letters {len(dead)}; "
        f"test ran {time.monotonic() - started:.0f} s"
    )

    # the collector: 503 with Retry-After while the broker was away, and nothing acknowledged lost or doubled
    assert sent.refused_during_outage > 0
    assert acknowledged == sent.events
    assert [m for m, n in per_message.items() if n > 1] == [], "an event is on the topic twice"
    assert set(per_message) == acknowledged, "the topic differs from what the collector acknowledged"
    # the job: resumed, and fired the batch model's reminders exactly once (and nothing else: a cart in every session)
    assert [t["trigger_type"] for t in fired if t["trigger_type"] != "cart_abandonment"] == []
    assert (missing[:5], extra[:5]) == ([], []), f"{len(missing)} missing, {len(extra)} extra (seed {seed})"
    assert {(t["person_id"], t["reminder_index"]) for t in fired} == {(t.person_id, t.reminder_index) for t in owed}
    assert [tid for tid, n in fired_ids.items() if n > 1] == [], "a trigger was emitted twice"
    assert len(fired) == len(owed) > before > 0
    assert [json.loads(d) for d in dead] == [], "dead-lettered (late or bad)"
