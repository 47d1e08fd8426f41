"""Produce to and read from the real broker in tests: fresh topics, and committed reads to the end."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


class KafkaTestClient:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests")
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)

    def create_topics(self, *names: str, partitions: int = 2) -> None:
        """Topics as flink-conf/topics.yaml makes the jobs' outputs: stamped when written, so the broker's
        time retention does not delete records the jobs stamp with the tests' (2026-01) event times."""
        config = {"message.timestamp.type": "LogAppendTime"}
        self.admin.create_topics([NewTopic(name, partitions, 1, topic_configs=config) for name in names])

    def produce(self, topic: str, records: Iterable[bytes | str | dict], key: str | None = None) -> int:
        count = 0
        for record in records:
            if isinstance(record, dict):
                value = json.dumps(record).encode()
                record_key = str(record.get("userId") or record.get("anonymousId") or "").encode() or None
            else:
                value = record.encode() if isinstance(record, str) else record
                record_key = key.encode() if key else None
            self.producer.send(topic, value=value, key=record_key)
            count += 1
        self.producer.flush(timeout=30)
        return count

    def read_all(self, topic: str, timeout_s: float = 30.0) -> list[bytes]:
        """Every committed record now in ``topic`` (read_committed hides aborted transactions)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, isolation_level="read_committed", enable_auto_commit=False
        )
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            end = consumer.end_offsets(partitions)
            values: list[bytes] = []
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < end[tp] for tp in partitions):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic} did not reach its end offsets within {timeout_s} s")
                for batch in consumer.poll(timeout_ms=500).values():
                    values.extend(record.value for record in batch)
            return values
        finally:
            consumer.close()

    def read_json(self, topic: str) -> list[dict]:
        return [json.loads(value) for value in self.read_all(topic)]

    def close(self) -> None:
        self.producer.close()
        self.admin.close()
