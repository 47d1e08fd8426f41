"""Both jobs submitted with ``flink run -py`` to a standalone cluster started from the pip-installed Flink."""

from __future__ import annotations

import pytest
import yaml

from sandbox.cluster import cluster_down, cluster_up, submit
from sandbox.jobs import CLICKSTREAM_JOBS
from sandbox.settings import PROJECT_ROOT
from tests.support.events import BEGINNING, MINUTE, as_json, product_added, product_viewed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flink_cluster(sandbox):
    started = cluster_up(sandbox)
    yield sandbox
    if started:
        cluster_down(sandbox)


def _config_for(name: str, config: str, run_id: str, topics: dict[str, str], tmp_path) -> str:
    cfg = yaml.safe_load((PROJECT_ROOT / config).read_text())
    cfg["job_name"] = f"{cfg['job_name']}-cluster-{run_id}"
    cfg["kafka"].update({"group_id": f"{name}-cluster-{run_id}", "starting_offsets": "earliest"})
    cfg["topics"] = topics
    cfg["redis"]["key_prefix"] = f"cluster-{run_id}:profile:"
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_flink_run_submits_both_jobs(flink_cluster, kafka, redis_client, run_id, tmp_path):
    topics = {"events": f"cl-events-{run_id}", "dead_letter": f"cl-dlq-{run_id}", "triggers": f"cl-tr-{run_id}"}
    kafka.create_topics(*topics.values())
    events = [product_added("ann", BEGINNING, product_id="boot", price=99.0)]
    events += [product_viewed("bo", BEGINNING + n * MINUTE, product_id="lamp", category="gear") for n in range(3)]
    kafka.produce(topics["events"], [as_json(e) for e in events])

    for name, (script, config) in CLICKSTREAM_JOBS.items():
        path = _config_for(name, config, run_id, topics, tmp_path)
        assert submit(flink_cluster, script, path, ["--bounded"], detached=False) == 0, name

    triggers = kafka.read_json(topics["triggers"])
    assert sorted((t["person_id"], t["trigger_type"]) for t in triggers) == [
        ("ann", "cart_abandonment"),
        ("ann", "cart_abandonment"),
        ("bo", "browse_abandonment"),
    ]
    profile = redis_client.hgetall(f"cluster-{run_id}:profile:ann")
    assert profile["cart_value"] == "99.00"
    assert "intent_score" in redis_client.hgetall(f"cluster-{run_id}:profile:bo")
