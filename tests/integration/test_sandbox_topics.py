"""The sandbox's topics from flink-conf/topics.yaml, on the real broker."""

from __future__ import annotations

from dataclasses import replace

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from sandbox.kafka import create_topics, load_topics
from tests.support.events import BEGINNING

pytestmark = pytest.mark.integration


def _read_back(bootstrap: str, topic: str, key: bytes) -> list[tuple[int, int]]:
    """(timestamp type, timestamp) of this test's records on partition 0 of ``topic``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        return [(r.timestamp_type, r.timestamp) for r in consumer if r.key == key]
    finally:
        consumer.close()


def test_a_record_stamped_with_an_old_event_time_is_kept_by_the_time_it_was_written(sandbox, run_id):
    """A trigger from a replay of January's clicks carries a January timestamp; the topic stamps it anew, so
    seven-day retention counts from now instead of deleting it at the next check."""
    producer = KafkaProducer(bootstrap_servers=sandbox.kafka_bootstrap, acks="all")
    key = run_id.encode()
    producer.send("email.triggers", key=key, value=b"{}", partition=0, timestamp_ms=BEGINNING).get(timeout=30)
    producer.close()

    [(timestamp_type, timestamp)] = _read_back(sandbox.kafka_bootstrap, "email.triggers", key)
    assert timestamp_type == 1, "LogAppendTime"
    assert timestamp > BEGINNING + 30 * 24 * 3600 * 1000


def test_configs_added_later_reach_topics_made_before(sandbox, tmp_path, run_id):
    """``make up`` on an old sandbox: the existing topic gets the config its entry now has."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    topic = f"sandbox-topic-{run_id}"
    admin = KafkaAdminClient(bootstrap_servers=sandbox.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
        listed = tmp_path / "topics.yaml"
        listed.write_text(f"topics:\n  {topic}:\n    config: {{message.timestamp.type: LogAppendTime}}\n")
        assert load_topics(listed)[topic].config == {"message.timestamp.type": "LogAppendTime"}
        assert create_topics(replace(sandbox, topics_file=listed)) == []

        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        assert described["topic"][topic]["message.timestamp.type"]["value"] == "LogAppendTime"
    finally:
        admin.delete_topics([topic])
        admin.close()


def test_a_job_warns_when_its_output_topic_would_expire_replayed_records(sandbox, run_id):
    """The check a sink runs at job start, against the real broker's effective configs."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from connectors.topic_check import warn_if_replays_expire

    plain = f"plain-topic-{run_id}"
    admin = KafkaAdminClient(bootstrap_servers=sandbox.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(plain, 1, 1)])
        warning = warn_if_replays_expire(sandbox.kafka_bootstrap, plain)
        assert warning is not None and "retention.ms=604800000" in warning
        assert warn_if_replays_expire(sandbox.kafka_bootstrap, "email.triggers") is None
    finally:
        admin.delete_topics([plain])
        admin.close()
