"""The clickstream job submitted with ``flink run -py`` to a standalone cluster started from the pip-installed
Flink, running as it would in production (unbounded, detached), then cancelled through the REST API."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from sandbox.cluster import REST_PORT, cluster_down, cluster_up, submit
from sandbox.jobs import CLICKSTREAM_JOBS
from sandbox.settings import PROJECT_ROOT
from tests.support.events import BEGINNING, DAY, MINUTE, page_viewed, product_added, product_viewed
from tests.support.jobs import wait_for

pytestmark = pytest.mark.integration

REST = f"http://127.0.0.1:{REST_PORT}"


@pytest.fixture(scope="module")
def flink_cluster(sandbox):
    started = cluster_up(sandbox)
    yield sandbox
    if started:
        cluster_down(sandbox)


def _config_for(name: str, config: str, run_id: str, topics: dict[str, str], tmp_path) -> str:
    cfg = yaml.safe_load((PROJECT_ROOT / config).read_text())
    cfg["job_name"] = f"{cfg['job_name']}-cluster-{run_id}"
    cfg["kafka"].update({"group_id": f"{name}-cluster-{run_id}", "starting_offsets": "earliest", "bounded": False})
    cfg["topics"] = topics
    cfg["redis"]["key_prefix"] = f"cluster-{run_id}:profile:"
    cfg["event_time"]["idleness"] = "2s"
    cfg["flink"]["execution.checkpointing.interval"] = "2s"
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _jobs(run_id: str) -> list[dict]:
    with urllib.request.urlopen(f"{REST}/jobs/overview", timeout=10) as answer:  # noqa: S310 - loopback
        return [j for j in json.load(answer)["jobs"] if run_id in j["name"]]


def _running_jobs(run_id: str) -> list[str]:
    return [j["jid"] for j in _jobs(run_id) if j["state"] == "RUNNING"]


def _job_states(run_id: str) -> dict[str, str]:
    return {j["name"]: j["state"] for j in _jobs(run_id)}


def _cancel(job_id: str) -> None:
    request = urllib.request.Request(f"{REST}/jobs/{job_id}?mode=cancel", method="PATCH")  # noqa: S310
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - loopback


def test_flink_run_submits_the_clickstream_job(flink_cluster, kafka, redis_client, run_id, tmp_path):
    topics = {"events": f"cl-events-{run_id}", "dead_letter": f"cl-dlq-{run_id}", "triggers": f"cl-tr-{run_id}"}
    kafka.create_topics(topics["events"], partitions=1, create_time=True)
    kafka.create_topics(topics["dead_letter"], topics["triggers"], partitions=1)
    events = [product_added("ann", BEGINNING, product_id="boot", price=99.0)]
    events += [product_viewed("bo", BEGINNING + n * MINUTE, product_id="lamp", category="gear") for n in range(3)]
    events.append(page_viewed("clock", BEGINNING + 3 * DAY))  # the watermark passes every timer and session
    kafka.produce(topics["events"], events)  # each record stamped with its event time, as the collector does

    for name, (script, config) in CLICKSTREAM_JOBS.items():
        path = _config_for(name, config, run_id, topics, tmp_path)
        assert submit(flink_cluster, script, path, [], detached=True) == 0, name
    try:
        log = flink_cluster.logs_dir / "flink-cluster"
        wait_for(
            lambda: len(kafka.read_all(topics["triggers"])) >= 3,
            [],
            log,
            "three committed triggers",
            explain=lambda: f"jobs: {_job_states(run_id)}, triggers so far: {kafka.read_json(topics['triggers'])}",
        )
    finally:
        for job_id in _running_jobs(run_id):
            _cancel(job_id)

    triggers = kafka.read_json(topics["triggers"])
    assert sorted((t["person_id"], t["trigger_type"]) for t in triggers) == [
        ("ann", "cart_abandonment"),
        ("ann", "cart_abandonment"),
        ("bo", "browse_abandonment"),
    ]
    profile = redis_client.hgetall(f"cluster-{run_id}:profile:ann")
    assert profile["cart_value"] == "99.00"
    assert "intent_score" in redis_client.hgetall(f"cluster-{run_id}:profile:bo")


def _restored_from(job_id: str) -> str | None:
    with urllib.request.urlopen(f"{REST}/jobs/{job_id}/checkpoints", timeout=10) as answer:  # noqa: S310
        restored = (json.load(answer).get("latest") or {}).get("restored") or {}
    return restored.get("external_path")


def test_a_job_submitted_again_resumes_from_its_newest_checkpoint(flink_cluster, kafka, redis_client, run_id, tmp_path):
    """Cancelled with a cart pending, then submitted with the very same command: the reminders still fire, once."""
    topics = {"events": f"cr-events-{run_id}", "dead_letter": f"cr-dlq-{run_id}", "triggers": f"cr-tr-{run_id}"}
    kafka.create_topics(topics["events"], partitions=1, create_time=True)
    kafka.create_topics(topics["dead_letter"], topics["triggers"], partitions=1)
    script, config = CLICKSTREAM_JOBS["clickstream"]
    path = Path(_config_for("clickstream", config, run_id, topics, tmp_path))
    cfg = yaml.safe_load(path.read_text())
    checkpoints = tmp_path / "checkpoints"
    cfg["flink"]["execution.checkpointing.dir"] = checkpoints.as_uri()
    # A TaskManager that once ran a thread-mode job cannot load pemja for another (PyFlink 2.2.1), and the first
    # test here ran one: resubmitting needs process mode, or fresh TaskManagers (README, "Running on a Flink cluster").
    cfg["flink"]["python.execution-mode"] = "process"
    path.write_text(yaml.safe_dump(cfg))
    kafka.produce(topics["events"], [product_added("cy", BEGINNING, product_id="boot", price=99.0)])
    kafka.produce(topics["events"], [page_viewed("clock", BEGINNING + 30 * MINUTE)])  # nothing due yet

    assert submit(flink_cluster, script, path, [], detached=True) == 0
    log = flink_cluster.logs_dir / "flink-cluster"
    (first,) = wait_for_jobs(run_id, log)
    profile_written = lambda: redis_client.hget(f"cluster-{run_id}:profile:cy", "cart_value") == "99.00"  # noqa: E731
    wait_for(profile_written, [], log, "the cart in the profile")
    written_at = time.time()
    wait_for(
        lambda: any(m.stat().st_mtime > written_at + 1 for m in checkpoints.glob("*/chk-*/_metadata")),
        [],
        log,
        "a checkpoint holding the cart",
    )
    _cancel(first)
    wait_for(lambda: _running_jobs(run_id) == [], [], log, "the job cancelled")
    assert kafka.read_json(topics["triggers"]) == []

    kafka.produce(topics["events"], [page_viewed("clock", BEGINNING + 3 * DAY)])
    assert submit(flink_cluster, script, path, [], detached=True) == 0  # the same command
    try:
        (second,) = wait_for_jobs(run_id, log)
        wait_for(lambda: len(kafka.read_json(topics["triggers"])) >= 2, [], log, "both reminders")
        restored = _restored_from(second)
        time.sleep(5)  # more checkpoints: a reminder emitted twice would be committed by now
    finally:
        for job_id in _running_jobs(run_id):
            _cancel(job_id)
    assert restored is not None and str(checkpoints) in restored, restored
    fired = sorted((t["person_id"], t["reminder_index"]) for t in kafka.read_json(topics["triggers"]))
    assert fired == [("cy", 1), ("cy", 2)]


def wait_for_jobs(run_id: str, log: Path) -> list[str]:
    """The ids of this test's running jobs, once there is one."""
    wait_for(lambda: _running_jobs(run_id) != [], [], log, "the job running")
    return _running_jobs(run_id)
