"""Redis restarted mid-stream: what the pipeline keeps there comes back from the AOF, and no email goes out twice.

The test owns a Redis (the sandbox's command line, so AOF on with its ``appendfsync``; its own port and data
folder) and points at it everything that keeps state in Redis: a collector of its own (dedup claims, identity
links), the clickstream job (profiles) and two email delivery jobs (claims, sends per person, the
suppression list). The broker is the session's; the ESP sandbox is the test's own as well, because injected
faults are one queue per provider that every running test's jobs take from (another session's 120 queued
SendGrid faults were taken by this test's job, and this test's held answer by theirs).

1. A shopper's identify and Product Added go through the collector (a link, a dedup claim, traits and a cart in the
   profile); triggers stream into the delivery job, about ten a second.
2. Redis is SIGKILLed while they stream and while one send is held at SendGrid (accepted, the answer 4 s late),
   stays down 5 s (the collector answers 503, the jobs keep running and delivery defers what it cannot look
   up), then starts on the same folder: every key written before the kill is back, the refused call is taken
   once when resent, the repeated one is deduplicated, and an anonymous call still resolves to the shopper.
3. The same with a clean SIGTERM.
4. Every trigger has exactly one email and at least one final outcome; some are sent to the job again, and all
   are replayed into the second delivery job, whose state is empty, so only the ledger's claims stand between
   them and a second email: nothing more is sent.
5. Last: no job failed over. The jobs run with the shipped restart strategy (shortened), so that everything
   above is checked even when one does; a restart found in a job's Flink log fails the test, with its cause.

With ``appendfsync everysec`` a killed Redis loses nothing it acknowledged (the write is in the OS's page cache
before the reply); what everysec risks is the last second or two when the machine itself goes down, which a
test on one machine cannot do (sandbox/redis.py).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from connectors.delivery_ledger import DeliveryLedger
from sandbox.process import ManagedProcess
from sandbox.redis import redis_process
from sandbox.settings import PROJECT_ROOT, SandboxSettings
from tests.integration.test_email_delivery import _trigger
from tests.support.collector import CollectorClient, free_port, own_collector
from tests.support.esp import EspSandbox, running_esp_sandbox
from tests.support.events import iso, product_added
from tests.support.jobs import job_config, running_job, wait_for
from tests.support.outcomes import tally

pytestmark = pytest.mark.integration

FEED_INTERVAL_S = 0.1
OUTAGE_S = 5.0
HOLD_MS = 4000
PEOPLE = 1000  # profiles written up front; the stream uses 150-300


@dataclass
class OwnRedis:
    """A Redis of the test's own, started exactly as the sandbox starts its own (sandbox/redis.py)."""

    settings: SandboxSettings

    @property
    def url(self) -> str:
        return self.settings.redis_url

    def process(self) -> ManagedProcess:
        return redis_process(self.settings)

    def start(self) -> None:
        assert self.process().start(), "Redis was still running"

    def crash(self) -> None:
        """SIGKILL: no shutdown, no last fsync; then reap it (this process is its parent)."""
        process = self.process()
        pid = process.pid()
        assert pid is not None, "Redis is not running"
        os.killpg(pid, signal.SIGKILL)
        process.stop(timeout_s=10.0)

    def shut_down(self) -> None:
        """SIGTERM: Redis flushes and fsyncs its AOF, then exits."""
        assert self.process().stop(), "Redis was not running"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)


@pytest.fixture
def own_redis(sandbox: SandboxSettings, tmp_path: Path) -> Iterator[OwnRedis]:
    settings = SandboxSettings(
        home=tmp_path / "redis",
        host=sandbox.host,
        kafka_port=sandbox.kafka_port,
        kafka_controller_port=sandbox.kafka_controller_port,
        redis_port=free_port(),
        topics_file=sandbox.topics_file,
    )
    own = OwnRedis(settings)
    own.start()
    try:
        yield own
    finally:
        own.process().stop()


@pytest.fixture
def own_esp(tmp_path: Path) -> Iterator[EspSandbox]:
    with running_esp_sandbox(tmp_path / "esp") as esp:
        yield esp


class Feeder:
    """One trigger every :data:`FEED_INTERVAL_S` onto the delivery job's topic, from a thread, until stopped."""

    def __init__(self, kafka: Any, topic: str, name: str) -> None:
        self.kafka, self.topic, self.name = kafka, topic, name
        self.produced: list[tuple[str, bytes, str]] = []  # trigger id, record, phase
        self.phase = "warm-up"
        self._next = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def person(self, n: int) -> str:
        return f"{self.name}-p{n}"

    def produce_one(self) -> None:
        record = _trigger(self.person(self._next))
        self._next += 1
        self.kafka.produce(self.topic, [record])
        self.produced.append((json.loads(record)["trigger_id"], record, self.phase))

    def start(self, phase: str) -> None:
        self.phase = phase
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="trigger-feeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(FEED_INTERVAL_S):
                self.produce_one()
        except BaseException as exc:  # noqa: BLE001 - handed to the test by stop()
            self._error = exc

    def halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def stop(self) -> None:
        self.halt()
        if self._error is not None:
            raise AssertionError(f"producing triggers failed: {self._error!r}") from self._error

    def ids(self) -> list[str]:
        return [trigger_id for trigger_id, _, _ in self.produced]


def _flink(tmp_path: Path, name: str) -> dict[str, str]:
    """Quick checkpoints (the delivery records are committed with them), restarts as shipped but short, and the
    checkpoints under tmp_path."""
    return {
        "execution.checkpointing.interval": "2s",
        "execution.checkpointing.dir": (tmp_path / "checkpoints" / name).as_uri(),
        "execution.checkpointing.savepoint-dir": (tmp_path / "savepoints" / name).as_uri(),
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": "1s",
        "restart-strategy.exponential-delay.max-backoff": "2s",
    }


def _clickstream_config(tmp_path: Path, name: str, topics: dict[str, str], redis_url: str) -> Path:
    flink = {**_flink(tmp_path, name), "parallelism.default": 1}
    path = job_config("clickstream", tmp_path, name, topics, flink)
    cfg = yaml.safe_load(path.read_text())
    cfg["redis"]["url"] = redis_url
    path.write_text(yaml.safe_dump(cfg))
    return path


def _delivery_config(
    tmp_path: Path,
    name: str,
    topics: dict[str, str],
    redis_url: str,
    profiles: str,
    ledger: str,
    esp: EspSandbox,
    parallelism: int,
) -> Path:
    cfg = yaml.safe_load((PROJECT_ROOT / "flink-conf/jobs/email_delivery.yaml").read_text())
    cfg["job_name"] = name
    cfg["kafka"].update({"group_id": name, "starting_offsets": "earliest", "bounded": False})
    cfg["topics"] = topics
    cfg["redis"].update({"url": redis_url, "key_prefix": profiles})
    cfg["ledger_prefix"] = ledger
    providers = cfg["providers"]
    providers["sendgrid"]["base_url"] = providers["mailchimp"]["base_url"] = esp.url
    providers["smtp"].update({"host": "127.0.0.1", "port": esp.smtp_port})
    providers["webhook"]["url"] = f"{esp.url}/webhook/email"
    cfg["guardrails"].update({"holdout_percent": 0, "quiet_start": "00:00", "quiet_end": "00:00", "frequency_cap": 10})
    cfg["retries"].update(
        {"initial_backoff": "100ms", "max_backoff": "500ms", "defer_initial": "1s", "defer_max": "2s"}
    )
    if "reconcile_after" in cfg["retries"]:
        cfg["retries"]["reconcile_after"] = "2s"
    cfg["flink"].update({**_flink(tmp_path, name), "parallelism.default": parallelism})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snapshot(client: redis.Redis) -> dict[str, tuple[str, Any]]:
    """Every key with its type and value."""
    found: dict[str, tuple[str, Any]] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        readers = {
            "string": client.get,
            "hash": client.hgetall,
            "set": client.smembers,
            "zset": lambda k: dict(client.zrange(k, 0, -1, withscores=True)),
        }
        found[key] = (kind, readers[kind](key) if kind in readers else None)
    return found


def _lost(before: dict[str, tuple[str, Any]], after: dict[str, tuple[str, Any]]) -> list[str]:
    """What of ``before`` is missing or changed in ``after``; claims in ``sending`` may have moved on since, sends
    and suppressions may have grown, and the collector's event clock moves with time."""
    problems = []
    for key, (kind, value) in before.items():
        if key not in after:
            problems.append(f"{key} ({kind}) is gone")
            continue
        now = after[key][1]
        if kind in ("zset", "set"):
            missing = set(value) - set(now)
            if missing:
                problems.append(f"{key}: members gone {sorted(missing)[:3]}")
        elif "event-clock" in key or (":claim:" in key and json.loads(value)["state"] == "sending"):
            continue
        elif now != value:
            problems.append(f"{key}: was {value!r}, now {now!r}")
    return problems


def _kinds(keys: Any) -> Counter[str]:
    """Keys by what holds them, for the printout."""
    kinds: Counter[str] = Counter()
    for key in keys:
        for part, kind in (
            (":claim:", "claims"),
            (":sends:", "sends"),
            (":suppressed", "suppression"),
            (":dedup:", "dedup"),
            (":identity:", "identity"),
            (":profile:", "profiles"),
        ):
            if part in key:
                kinds[kind] += 1
                break
        else:
            kinds["other"] += 1
    return kinds


def _add(product_id: str, message_id: str, user: str | None = None, anonymous: str | None = None) -> dict[str, Any]:
    """A live Product Added as a server SDK sends it: ``user`` or only ``anonymous``."""
    doc = product_added(user or "x", int(time.time() * 1000), product_id=product_id, message_id=message_id)
    for key in ("personId", "receivedAt", "anonymousId", "userId"):
        doc.pop(key, None)
    doc.update({"userId": user} if user else {"anonymousId": anonymous})
    return doc


def _cart(client: redis.Redis, key: str) -> set[str]:
    raw = client.hget(key, "cart")
    return {item["product_id"] for item in json.loads(raw)["items"]} if raw else set()


def _resend_until_accepted(collector: CollectorClient, call: str, body: dict[str, Any], within_s: float = 30) -> int:
    """Resend as an SDK does, honouring Retry-After; returns how many 503s came first."""
    refused = 0
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        answer = collector.post(call, body)
        if answer.status_code == 200:
            return refused
        assert answer.status_code == 503, answer.text
        refused += 1
        time.sleep(float(answer.headers.get("Retry-After", "1")))
    raise AssertionError(f"the collector did not take {body['messageId']} within {within_s} s of Redis coming back")


def _pending_faults(esp: EspSandbox, provider: str) -> list[Any]:
    answer = esp.session.get(f"{esp.url}/_sandbox/faults", timeout=10)
    answer.raise_for_status()
    return list(answer.json().get(provider, []))


def _failures(log: Path) -> list[str]:
    """A job's Flink log lines saying it failed or restarted, and the errors from Redis that it gave as cause."""
    found = []
    for path in sorted((log.parent / "flink").glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if any(mark in line for mark in ("to RESTARTING", "switched from RUNNING to FAILED", "TransientError")):
                found.append(line.strip()[:400])
    return found


def test_redis_restarted_mid_stream_loses_no_key_and_sends_no_email_twice(
    sandbox, kafka, own_redis, own_esp, run_id, tmp_path
):
    started = time.monotonic()
    esp = own_esp
    name = f"rr-{run_id}"
    topics = {
        key: f"{name}-{key}"
        for key in ("events", "collector-dlq", "cs-dlq", "cs-triggers", "triggers", "deliveries", "dlq")
    }
    topics |= {"replay": f"{name}-replay", "replay-deliveries": f"{name}-replay-del", "replay-dlq": f"{name}-rdlq"}
    # One partition, one subtask, except for the delivery job under test (as shipped: two): less to start
    kafka.create_topics(topics["triggers"], partitions=2)
    kafka.create_topics(topics["events"], partitions=1, create_time=True)  # stamped with event time by the collector
    kafka.create_topics(*(topic for key, topic in topics.items() if key not in ("triggers", "events")), partitions=1)
    profiles, ledger_prefix = f"{name}:profile:", f"{name}:ledger:"
    email, unsubscribed = f"{name}@example.com", f"{name}-unsub"
    shopper, browser = f"{name}-shopper", f"{name}-browser"
    clickstream_name = f"{name}-clickstream"
    cart_profile = f"{clickstream_name}:profile:{shopper}"

    r = own_redis.client()
    assert r.config_get("appendonly") == {"appendonly": "yes"}, "the sandbox's Redis runs with AOF on"
    fsync = r.config_get("appendfsync")["appendfsync"]
    pipe = r.pipeline()
    for n in range(PEOPLE):
        pipe.hset(f"{profiles}{name}-p{n}", mapping={"email": email, "first_name": "Ann"})
    pipe.hset(f"{profiles}{unsubscribed}", mapping={"email": f"{unsubscribed}@example.com", "first_name": "Bo"})
    pipe.execute()
    ledger = DeliveryLedger(own_redis.url, ledger_prefix)
    ledger.setup()
    ledger.suppress([f"{unsubscribed}@example.com"], "unsubscribed", "test")
    ledger.close()

    clickstream_cfg = _clickstream_config(
        tmp_path,
        clickstream_name,
        {"events": topics["events"], "dead_letter": topics["cs-dlq"], "triggers": topics["cs-triggers"]},
        own_redis.url,
    )
    delivery_cfg, replay_cfg = (
        _delivery_config(
            tmp_path,
            f"{name}-{job}",
            {"triggers": topics[source], "deliveries": topics[sink], "dead_letter": topics[dlq]},
            own_redis.url,
            profiles,
            ledger_prefix,
            esp,
            parallelism,
        )
        for job, source, sink, dlq, parallelism in (
            ("delivery", "triggers", "deliveries", "dlq", 2),
            ("replay", "replay", "replay-deliveries", "replay-dlq", 1),
        )
    )
    logs = {job: tmp_path / job / "job.log" for job in ("clickstream", "delivery", "replay")}
    for log in logs.values():
        log.parent.mkdir()
    collector_env = {
        **sandbox.env(),
        "REDIS_URL": own_redis.url,
        "COLLECTOR_EVENTS_TOPIC": topics["events"],
        "COLLECTOR_DLQ_TOPIC": topics["collector-dlq"],
        "COLLECTOR_RETRY_AFTER": "1s",
        "COLLECTOR_REDIS_TIMEOUT": "1s",
    }
    feeder = Feeder(kafka, topics["triggers"], name)
    unsub_record = _trigger(unsubscribed)
    unsub_id = json.loads(unsub_record)["trigger_id"]
    emails = lambda: esp.messages(to=email)  # noqa: E731

    with ExitStack() as stack:
        collector = stack.enter_context(own_collector(f"collector-{name}", sandbox.host, tmp_path / "c", collector_env))
        jobs = [
            stack.enter_context(running_job(job, cfg, logs[key]))
            for job, cfg, key in (
                ("clickstream", clickstream_cfg, "clickstream"),
                ("email_delivery", delivery_cfg, "delivery"),
                ("email_delivery", replay_cfg, "replay"),
            )
        ]
        stack.callback(feeder.halt)

        # 1. a link, a dedup claim and a cart; the delivery job sending
        identify = {
            "type": "identify",
            "userId": shopper,
            "anonymousId": browser,
            "traits": {"email": f"{shopper}@example.com"},
            "messageId": f"{name}-identify",
            "timestamp": iso(int(time.time() * 1000)),
        }
        first_add = _add("hat", f"{name}-add-hat", user=shopper)
        assert collector.post("identify", identify).status_code == 200
        assert collector.post("track", first_add).status_code == 200
        wait_for(lambda: _cart(r, cart_profile) == {"hat"}, jobs, logs["clickstream"], "the cart in the profile", 150)
        assert r.hget(cart_profile, "email") == f"{shopper}@example.com"  # the identify's traits, same job
        feeder.produce_one()
        wait_for(lambda: len(emails()) >= 1, jobs, logs["delivery"], "the delivery job's first email", 150)
        print(f"\njobs up after {time.monotonic() - started:.0f} s; Redis appendonly yes, appendfsync {fsync}")
        feeder.start("before the kill")
        wait_for(lambda: len(emails()) >= 15, jobs, logs["delivery"], "emails streaming", 60)

        # 2. SIGKILL while the stream runs and one accepted send waits for its answer
        esp.fail_next("sendgrid", {"status": 202, "delay_ms": HOLD_MS})
        deadline = time.monotonic() + 10
        while _pending_faults(esp, "sendgrid") and time.monotonic() < deadline:
            time.sleep(0.05)
        held = not _pending_faults(esp, "sendgrid")
        before = _snapshot(r)
        own_redis.crash()
        killed_at = time.monotonic()
        feeder.phase = "Redis down"
        at_provider = {m["trigger_id"] for m in emails()}
        in_flight = [
            k.rsplit(":", 1)[1]
            for k, (kind, v) in before.items()
            if ":claim:" in k and json.loads(v)["state"] == "sending"
        ]
        outage_add = _add("sock", f"{name}-add-sock", user=shopper)
        refused = collector.post("track", outage_add)
        assert refused.status_code == 503, f"with Redis down the collector answered {refused.status_code}"
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed_at)))
        for job in jobs:
            assert job.poll() is None, f"a job exited while Redis was down; see {tmp_path}"
        own_redis.start()
        feeder.phase = "after the restart"
        after = _snapshot(r)
        assert _lost(before, after) == [], "keys written before the SIGKILL did not come back"
        kinds = _kinds(before)
        assert {"profiles", "claims", "sends", "suppression", "dedup", "identity"} <= set(kinds), kinds
        print(
            f"SIGKILL: {len(before)} keys before ({dict(sorted(kinds.items()))}), all back after the restart; "
            f"{len(in_flight)} claims in 'sending' at the kill, {len(set(in_flight) & at_provider)} of them already "
            f"at the provider (the held 4 s answer: {'taken' if held else 'NOT taken'})"
        )

        resent_503s = _resend_until_accepted(collector, "track", outage_add)
        assert collector.post("track", first_add).status_code == 200  # a repeat: answered, not produced
        assert collector.metric("cartpulse_collector_events_deduplicated_total") == 1
        anonymous_mid = f"{name}-add-scarf"
        assert collector.post("track", _add("scarf", anonymous_mid, anonymous=browser)).status_code == 200
        kafka.produce(topics["triggers"], [unsub_record])
        time.sleep(2)
        feeder.stop()

        # 3. a clean SIGTERM
        feeder.start("around a SIGTERM")
        time.sleep(1)
        before_term = _snapshot(r)
        own_redis.shut_down()
        time.sleep(2)
        own_redis.start()
        assert _lost(before_term, _snapshot(r)) == [], "keys written before the SIGTERM did not come back"
        time.sleep(1)
        feeder.stop()
        print(f"SIGTERM: {len(before_term)} keys before, all back after the restart")

        # 4. one email each, at least one final outcome each; the clickstream side carried on
        ids = feeder.ids()
        everyone = [*ids, unsub_id]

        def current() -> Any:
            return tally(everyone, kafka.read_json(topics["deliveries"]), emails())

        def settled() -> bool:
            now = current()
            return all(now.emails.get(t) for t in ids) and all(now.finals.get(t) for t in everyone)

        def unsettled() -> str:
            now = current()
            late = [t for t in everyone if not now.finals.get(t) or (t != unsub_id and not now.emails.get(t))]
            return f"{now.summary()}; {len(late)} unsettled, e.g. {late[:3]}"

        wait_for(settled, jobs, logs["delivery"], "an email and an outcome for every trigger", 90, explain=unsettled)
        whole = {"hat", "sock", "scarf"}
        wait_for(lambda: _cart(r, cart_profile) == whole, jobs, logs["clickstream"], "the whole cart", 60)
        assert r.hget(cart_profile, "email") == f"{shopper}@example.com"
        on_topic = [doc for doc in kafka.read_json(topics["events"]) if doc.get("type") == "track"]
        counts = Counter(doc["messageId"] for doc in on_topic)
        assert (counts[first_add["messageId"]], counts[outage_add["messageId"]], counts[anonymous_mid]) == (1, 1, 1)
        assert [doc["personId"] for doc in on_topic if doc["messageId"] == anonymous_mid] == [shopper]

        # 5. duplicates: some to the same job, all of them to a job with empty state
        by_phase: dict[str, list[str]] = {}
        for trigger_id, _, phase in feeder.produced:
            by_phase.setdefault(phase, []).append(trigger_id)
        again = sorted({*in_flight, *(t for phase in by_phase.values() for t in phase[:5])} & set(ids))
        records = {trigger_id: record for trigger_id, record, _ in feeder.produced}
        seen = Counter(d["trigger_id"] for d in kafka.read_json(topics["deliveries"]))
        kafka.produce(topics["triggers"], [records[t] for t in again])
        kafka.produce(topics["replay"], [*records.values(), unsub_record])

        def duplicates_decided() -> bool:
            main = Counter(d["trigger_id"] for d in kafka.read_json(topics["deliveries"]))
            replayed = tally(everyone, kafka.read_json(topics["replay-deliveries"]), [])
            return all(main[t] > seen[t] for t in again) and all(replayed.finals.get(t) for t in everyone)

        wait_for(duplicates_decided, jobs, logs["replay"], "an outcome for every duplicate and replayed trigger", 90)
        time.sleep(3)  # a second email would show by now

    deliveries = kafka.read_json(topics["deliveries"])
    replayed = kafka.read_json(topics["replay-deliveries"])
    result = tally(everyone, deliveries + replayed, emails() + esp.messages(to=f"{unsubscribed}@example.com"))

    def outcome(records: list[dict[str, Any]], wanted: set[str]) -> dict[str, int]:
        """status/reason counts, ``+recovered`` when the record was written again from the ledger."""
        found = Counter(
            f"{d['status']}/{d['reason']}{'+recovered' if d.get('recovered') else ''}"
            for d in records
            if d["trigger_id"] in wanted
        )
        return dict(sorted(found.items()))

    print(f"triggers by phase: { {phase: len(t) for phase, t in by_phase.items()} } + 1 to an unsubscribed address")
    print(f"collector: refused with Redis down, then taken after {resent_503s} more 503s; the repeat deduplicated")
    print(f"delivery records: {outcome(deliveries, set(everyone))}")
    print(f"{len(again)} sent again to the job, all their records: {outcome(deliveries, set(again))}")
    print(f"{len(everyone)} replayed into a job with empty state: {outcome(replayed, set(everyone))}")
    print(f"tally: {result.summary()}")
    failures = {job: _failures(log) for job, log in logs.items()}
    for job, lines in failures.items():
        restarts = sum("to RESTARTING" in line for line in lines)
        print(f"{job} job: {restarts} restarts" + "".join(f"\n    {line}" for line in lines[:6]))
    print(f"run time {time.monotonic() - started:.0f} s")

    wrong = [f"{t}: {result.emails.get(t, 0)} emails" for t in ids if result.emails.get(t, 0) != 1]
    assert wrong == [], f"not exactly one email each: {wrong[:10]}"
    assert result.emails.get(unsub_id, 0) == 0
    assert [t for t in everyone if not result.finals.get(t)] == []
    assert "suppressed" in result.finals[unsub_id]
    assert [t for t in everyone if not tally([t], replayed, []).finals.get(t)] == []
    assert failures == {job: [] for job in logs}, "a job failed (and was restarted) over the Redis restart"
