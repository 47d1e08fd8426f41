"""A backlog after an outage, then a quiet shop: every owed reminder, and a live one on time with no traffic.

The clickstream job runs unbounded as its own process (as ``make run`` does), started on a backlog: shoppers
from five days ago, sent through a collector of the test's own (heartbeats on) before the job starts, as after an
outage. It must fire exactly the batch model's reminders for them and dead-letter none as late. Then one live
``Product Added`` and nothing else: the collector's watermark heartbeats alone must bring its reminder
(20 s after the add), which without them would wait for the next click. The collector stamps each record with
its event's time and each heartbeat with its event clock; the job's Kafka source makes its watermarks from those.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.cart_model import ModelPolicy, ModelTrigger, expected_triggers
from tests.support.collector import own_collector
from tests.support.events import DAY, HOUR, SECOND, iso, product_added, product_removed
from tests.support.histories import as_model_trigger
from tests.support.jobs import job_config, running_job, wait_for

pytestmark = pytest.mark.integration

REMINDERS = [{"after": "20s", "template": "cart_reminder_1"}, {"after": "1h", "template": "cart_reminder_2"}]
POLICY = ModelPolicy((20 * SECOND, HOUR), cooldown_ms=0, max_reminders=2)


def backlog(run_id: str, now_ms: int) -> list[dict[str, Any]]:
    """Forty shoppers over a day, five days ago; some remove what they added."""
    rng = random.Random(7)
    docs = []
    for shopper in range(40):
        person, start = f"{run_id}-late{shopper}", now_ms - 5 * DAY + rng.randrange(DAY)
        docs.append(product_added(person, start, product_id="shoe", message_id=f"{person}-a"))
        if rng.random() < 0.3:
            docs.append(product_removed(person, start + 10 * SECOND, product_id="shoe", message_id=f"{person}-r"))
        if rng.random() < 0.5:
            docs.append(product_added(person, start + 2 * HOUR, product_id="hat", message_id=f"{person}-b"))
    for doc in docs:
        doc.pop("personId", None)
        doc.pop("receivedAt", None)
    return sorted(docs, key=lambda doc: doc["timestamp"])


def test_a_backlog_gives_the_owed_reminders_and_a_silent_shop_still_gets_its_own(sandbox, kafka, run_id, tmp_path):
    topics = {"events": f"quiet-{run_id}", "dead_letter": f"quiet-dlq-{run_id}", "triggers": f"quiet-tr-{run_id}"}
    kafka.create_topics(topics["events"], partitions=4, create_time=True)
    kafka.create_topics(topics["dead_letter"], topics["triggers"])
    log = tmp_path / "job.log"
    collector_env = {
        **sandbox.env(),
        "COLLECTOR_EVENTS_TOPIC": topics["events"],
        "COLLECTOR_DLQ_TOPIC": f"quiet-cdlq-{run_id}",
        "COLLECTOR_HEARTBEAT_INTERVAL": "500ms",
        "COLLECTOR_HEARTBEAT_RESUME_WITHIN": "0",
    }
    with own_collector("collector-quiet", sandbox.host, tmp_path, collector_env) as c:
        old = backlog(run_id, int(time.time() * 1000))
        assert c.post("batch", {"batch": old}).status_code == 200
        config = _config(tmp_path, run_id, topics)
        with running_job("clickstream", config, log) as job:
            on_topic = [d for d in map(json.loads, kafka.read_all(topics["events"])) if d.get("type") != "watermark"]
            owed = expected_triggers(on_topic, POLICY)

            # The backlog's last reminders are due a day after its newest event: the heartbeats carry the
            # backlog's own clock, so they fire once live traffic moves the clock to now (the add below).
            time.sleep(20)  # let the job start and read the backlog
            added_ms = int(time.time() * 1000)
            live = product_added(f"{run_id}-live", added_ms, product_id="sock", message_id=f"{run_id}-live-add")
            live.pop("personId", None)
            live.pop("receivedAt", None)
            live["timestamp"] = iso(added_ms)
            assert c.post("track", live).status_code == 200

            def fired() -> list[ModelTrigger]:
                triggers = kafka.read_json(topics["triggers"])
                return sorted(as_model_trigger(t) for t in triggers if t["trigger_type"] == "cart_abandonment")

            live_first = ModelTrigger(f"{run_id}-live", 1, added_ms + 20 * SECOND, (("sock", 1),))

            def all_in() -> bool:
                got = fired()
                return set(owed) <= set(got) and any(_same_but_time(t, live_first) for t in got)

            def missing() -> str:
                return f"owed {len(owed)}, fired {len(fired())}; missing {sorted(set(owed) - set(fired()))[:5]}"

            wait_for(all_in, [job], log, "the backlog's reminders and the live one", timeout_s=240, explain=missing)
            got = fired()
            live_fired = next(t for t in got if _same_but_time(t, live_first))
            seen_after_ms = int(time.time() * 1000) - added_ms
            print(
                f"backlog: owed {len(owed)}, fired {len(got) - 1}; live reminder seen {seen_after_ms} ms after the add"
            )
    assert abs(live_fired.due_ms - live_first.due_ms) < 2 * SECOND  # the collector's clock correction: transit ms
    assert [t for t in got if t.person_id != live_first.person_id] == owed
    assert kafka.read_json(topics["dead_letter"]) == []
    triggers = kafka.read_json(topics["triggers"])
    assert {t["trigger_type"] for t in triggers} == {"cart_abandonment"}  # carts in every session: no browse trigger
    assert len({t["trigger_id"] for t in triggers}) == len(triggers)


def _same_but_time(a: ModelTrigger, b: ModelTrigger) -> bool:
    return (a.person_id, a.reminder_index, a.lines) == (b.person_id, b.reminder_index, b.lines)


def _config(tmp_path: Path, run_id: str, topics: dict[str, str]) -> Path:
    path = job_config("clickstream", tmp_path, f"quiet-{run_id}", topics, {"execution.checkpointing.interval": "2s"})
    cfg = yaml.safe_load(path.read_text())
    cfg["cart"].update({"reminders": REMINDERS, "max_reminders": 2, "cooldown": "0s", "state_ttl": "30d"})
    cfg["event_time"]["max_out_of_orderness"] = "2s"
    path.write_text(yaml.safe_dump(cfg))
    return path
