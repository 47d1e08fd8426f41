"""``make demo``: sample clicks → Kafka → cart abandonment job (embedded Flink) → Redis and triggers.

Prints what went in and what came out, and where to look next.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections import Counter

import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.delivery_ledger import DeliveryLedger
from demo.cart_model import ModelPolicy, expected_triggers
from demo.clickstream import (
    bad_records,
    email_of,
    fills_cart_anonymously,
    returns_to_buy,
    sample_clickstream,
    shoppers,
)
from jobs.clickstream import DEFAULT_CONFIG
from jobs.config import ClickstreamConfig, DeliveryConfig, load_config
from sandbox.esp import esp_sandbox_url
from sandbox.jobs import CLICKSTREAM_JOBS, DELIVERY_JOBS
from sandbox.settings import PROJECT_ROOT, SandboxSettings, load_settings

SHOPPERS = 40
DELIVERY_CONFIG = "flink-conf/jobs/email_delivery.yaml"
DAY_MS = 86_400_000


def _end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return consumer.end_offsets(partitions)
    finally:
        consumer.close()


def _read_since(bootstrap: str, since: dict[TopicPartition, int]) -> list[dict]:
    """Committed records after ``since`` up to the current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        end = consumer.end_offsets(list(since))
        records: list[dict] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in since) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(json.loads(r.value) for r in batch)
        return records
    finally:
        consumer.close()


def _run_jobs(settings: SandboxSettings, jobs: dict[str, tuple[str, str]], from_timestamp_ms: int) -> bool:
    """Jobs side by side, each on its own embedded cluster, over what arrived since ``from_timestamp_ms``."""
    env = {**os.environ, **settings.env(), "FLINK_LOG_DIR": str(settings.logs_dir / "flink")}
    running = []
    for name, (script, config) in jobs.items():
        log_file = settings.logs_dir / f"demo-{name}.log"
        argv = [sys.executable, str(PROJECT_ROOT / script), "--config", str(PROJECT_ROOT / config), "--bounded"]
        argv += ["--from-timestamp", str(from_timestamp_ms)]
        with open(log_file, "w") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, env=env)  # noqa: S603
        running.append((name, process, log_file))
    ok = True
    for name, process, log_file in running:
        if process.wait() != 0:
            print(f"error: {name} failed (exit {process.returncode}); see {log_file}", file=sys.stderr)
            ok = False
    return ok


def _suppress_demo_unsubscribes(settings: SandboxSettings, people: list[str]) -> None:
    """Two shoppers unsubscribed earlier: the import command's job, done here directly."""
    ledger = DeliveryLedger(settings.redis_url, load_config(DELIVERY_CONFIG, DeliveryConfig).ledger_prefix)
    ledger.setup()
    ledger.suppress([email_of(p) for p in people], "unsubscribed", "demo")
    ledger.close()


def _print_expected_vs_fired(events: list[dict], fired: list[dict], cfg: ClickstreamConfig) -> None:
    """The cart rule computed in one batch over the sample (demo/cart_model.py) beside what the job fired."""
    series = cfg.cart
    policy = ModelPolicy(tuple(r.after for r in series.reminders), series.cooldown, series.max_reminders)
    expected = {(t.person_id, t.reminder_index, t.due_ms) for t in expected_triggers(events, policy)}
    got = {(t["person_id"], t["reminder_index"], t["fired_at_ms"]) for t in fired}
    print(
        f"    cart reminders     expected {len(expected)} (the rule computed in one batch), fired {len(got)}, "
        f"missing {len(expected - got)}, extra {len(got - expected)}"
    )
    for person, index, due in sorted(expected ^ got)[:5]:
        print(f"        - {'missing' if (person, index, due) in expected else 'extra'}: {person} reminder {index}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings()
    cfg = load_config(DEFAULT_CONFIG, ClickstreamConfig)
    bootstrap = settings.kafka_bootstrap
    run_tag = f"demo{uuid.uuid4().hex[:6]}"
    start_ms = int(time.time() * 1000) - 2 * DAY_MS  # yesterday's traffic, replayed on event time

    events = sample_clickstream(SHOPPERS, run_tag, start_ms, anonymous_carts=True, returning_buyers=True)
    everyone = shoppers(SHOPPERS, run_tag, start_ms)
    stories = Counter(s.story for s in everyone)
    anonymous_carts = {s.person_id for n, s in enumerate(everyone) if fills_cart_anonymously(s, n)}
    returning = sum(1 for n, s in enumerate(everyone) if returns_to_buy(s, n))
    triggers_before = _end_offsets(bootstrap, cfg.topics.triggers)
    dlq_before = _end_offsets(bootstrap, cfg.topics.dead_letter)

    produced_at = int(time.time() * 1000) - 1000
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for event in events:
        key = event.get("personId") or event["userId"]  # the collector keys by the identity it resolved
        producer.send(cfg.topics.events, key=key.encode(), value=json.dumps(event).encode())
    for record in bad_records(run_tag, start_ms):
        producer.send(cfg.topics.events, value=record)
    producer.flush()
    producer.close()
    print(f"1/4 sent {len(events)} events from {SHOPPERS} shoppers ({dict(stories)}) and 3 broken records")
    print(f"    {len(anonymous_carts)} of those who abandon fill their cart before logging in")
    print(f"    {returning} of those who buy leave the cart and come back to buy it the next day")

    print(
        f"2/4 running {', '.join(CLICKSTREAM_JOBS)} on Flink's embedded local cluster "
        f"(logs: {settings.logs_dir}/demo-*.log) ..."
    )
    started = time.monotonic()
    if not _run_jobs(settings, CLICKSTREAM_JOBS, produced_at):
        return 1
    print(f"    done in {time.monotonic() - started:.0f} s")

    _suppress_demo_unsubscribes(settings, [s.person_id for s in everyone[:2]])
    delivery_cfg = load_config(DELIVERY_CONFIG, DeliveryConfig)
    deliveries_before = _end_offsets(bootstrap, delivery_cfg.topics.deliveries)
    print(f"3/4 running {', '.join(DELIVERY_JOBS)}: guardrails, templates, the ESP sandbox ...")
    started = time.monotonic()
    # email.triggers stamps records when they are written (flink-conf/topics.yaml): this run's triggers are
    # the ones written since its events were sent.
    if not _run_jobs(settings, DELIVERY_JOBS, produced_at):
        return 1
    print(f"    done in {time.monotonic() - started:.0f} s")

    written = _read_since(bootstrap, triggers_before)
    triggers = [t for t in written if t.get("person_id", "").startswith(run_tag)]
    to_browsers = [t for t in written if t.get("person_id", "").startswith(f"browser-{run_tag}")]
    dead = _read_since(bootstrap, dlq_before)
    store = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    profiles = sum(1 for s in everyone if store.exists(f"{cfg.redis.key_prefix}{s.person_id}"))
    store.close()

    by_template = Counter(t.get("template") or t["trigger_type"] for t in triggers)
    deliveries = [d for d in _read_since(bootstrap, deliveries_before) if d["person_id"].startswith(run_tag)]
    print("4/4 summary")
    print(f"    events in          {len(events) + 3}")
    print(f"    dead-lettered      {len(dead)}  (topic {cfg.topics.dead_letter}; each job reports what it rejects)")
    for (stage, reason), count in sorted(Counter((d["stage"], d["error"]) for d in dead).items()):
        print(f"        - {count} × {stage}: {reason[:90]}")
    print(f"    profiles written   {profiles}  (Redis hashes {cfg.redis.key_prefix}<person>)")
    print(f"    triggers fired     {len(triggers)}  {dict(by_template)}  (topic {cfg.topics.triggers})")
    carts = [t for t in triggers if t["trigger_type"] == "cart_abandonment"]
    if carts:
        sample = carts[0]
        print(
            f"    e.g. {sample['person_id']} ← {sample['template']}: "
            f"{len(sample['items'])} items, {sample['value']} {sample['currency']}, trigger_id {sample['trigger_id']}"
        )
    _print_expected_vs_fired(
        events, [*carts, *(t for t in to_browsers if t["trigger_type"] == "cart_abandonment")], cfg
    )
    followed = [t for t in carts if t["person_id"] in anonymous_carts]
    print(
        f"    carts filled before login: {len(followed)} reminders to {len({t['person_id'] for t in followed})} "
        f"of {len(anonymous_carts)} accounts, {len(to_browsers)} to browsers"
    )
    outcomes = Counter((d["status"], d["reason"]) for d in deliveries)
    print(
        f"    emails             {sum(n for (status, _), n in outcomes.items() if status == 'sent')} sent"
        f" (topic {delivery_cfg.topics.deliveries})"
    )
    for (status, reason), count in sorted(outcomes.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        print(f"        - {count} × {status}{f' ({reason})' if reason else ''}")
    print("    deferred emails wait for their moment while the job runs (make run); this demo's run stops at the end")
    person = carts[0]["person_id"] if carts else "<person>"
    print(f"    look: the outbox  {esp_sandbox_url(settings)}/   (every email, rendered)")
    print(f"          a profile   redis-cli -p {settings.redis_port} HGETALL {cfg.redis.key_prefix}{person}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
