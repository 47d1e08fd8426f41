"""The plain-Python baseline of ``make bench`` (bench/baseline) computes what the clickstream job must.

The benchmark's own seeded workload (2,000 events, 4 partitions, a clock tick per partition) through the real
broker and Redis: the baseline, run as a harness runs it (``python -m bench.baseline``, one JSON line out),
must send exactly the cart reminders and browse triggers the workload's stories call for, no dead letters,
and write a profile for every shopper, a cart for everyone who touched one, and each trigger's history. It runs
with watermarks as the records arrive, so the reminders and session ends fire mid-stream (the workload's clock
ticks move every partition past them); ``--no-watermarks`` is covered in tests/unit/benchmarks.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sandbox.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

EVENTS = 2_000
PARTITIONS = 4
RUN_TIMEOUT_S = 120


def test_baseline_sends_the_triggers_and_writes_the_profiles_the_job_must(sandbox, redis_client, run_id, monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "bench"))  # the benchmark modules import flinkbench top-level
    from baseline.check import check_baseline, collect_baseline_outputs
    from flinkbench.jobrun import delete_keys, delete_topics
    from flinkbench.workload import create_topics, expected_outputs, produce, workload

    events, triggers, dead_letters = f"bl-events-{run_id}", f"bl-triggers-{run_id}", f"bl-dlq-{run_id}"
    prefix = f"bl-{run_id}:profile:"
    create_topics(sandbox.kafka_bootstrap, {events: PARTITIONS, triggers: 1, dead_letters: 1})
    try:
        load = produce(sandbox.kafka_bootstrap, events, workload(EVENTS, run_id), PARTITIONS, clock_tick=True)
        expected = expected_outputs(load)
        done = subprocess.run(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", "bench.baseline", "--quiet", "--bootstrap", sandbox.kafka_bootstrap]
            + ["--redis-url", sandbox.redis_url, "--topic", events, "--key-prefix", prefix]
            + ["--triggers-topic", triggers, "--dead-letter-topic", dead_letters],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])

        all_triggers = sum((expected.cart_triggers + expected.intent_triggers).values())
        assert report["events"] == load.events + load.ticks
        assert (report["triggers"], report["dead_letters"], report["late"]) == (all_triggers, 0, 0)
        assert report["profiles_written"] == expected.intent_profiles
        assert [w["partition"] for w in report["workers"]] == list(range(PARTITIONS))

        outputs = collect_baseline_outputs(sandbox, triggers, dead_letters, prefix)
        assert check_baseline(expected, outputs) == []

        profiles = [k for k in redis_client.scan_iter(f"{prefix}*", 1_000) if not k.endswith(":triggers")]
        carts = sum(1 for k in profiles if redis_client.hexists(k, "cart_updated_ms"))
        scored = sum(1 for k in profiles if redis_client.hexists(k, "scored_at_ms"))
        assert (carts, scored) == (expected.cart_profiles, expected.intent_profiles)
        histories = list(redis_client.scan_iter(f"{prefix}*:triggers", 1_000))
        assert sum(redis_client.zcard(k) for k in histories) == all_triggers
    finally:
        delete_topics(sandbox, [events, triggers, dead_letters])
        delete_keys(sandbox, prefix)
