"""Produce to and read from the real broker in tests: fresh topics, and committed reads to the end."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import datetime

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


class KafkaTestClient:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests")
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)

    def create_topics(self, *names: str, partitions: int = 2, create_time: bool = False) -> None:
        """Topics as flink-conf/topics.yaml makes the jobs' outputs: stamped when written, so the broker's
        time retention does not delete records the jobs stamp with the tests' (2026-01) event times.

        :param create_time: an events topic instead, as ``clickstream.events`` is: each record keeps the timestamp
            its producer gave it (CreateTime), which an unbounded clickstream job makes its watermarks from (the
            collector stamps the event's time there; :meth:`produce` does the same for dicts). Kept without time
            retention, so that the tests' month-old event times are not deleted at the broker's next check.
        """
        if create_time:
            config = {"message.timestamp.type": "CreateTime", "retention.ms": "-1"}
        else:
            config = {"message.timestamp.type": "LogAppendTime"}
        self.admin.create_topics([NewTopic(name, partitions, 1, topic_configs=config) for name in names])

    def produce(
        self,
        topic: str,
        records: Iterable[bytes | str | dict],
        key: str | None = None,
        timestamp_ms: int | None = None,
    ) -> int:
        """Each record to ``topic``; a dict is keyed by its person and its record stamped with its ``timestamp``, as
        the collector does (an unbounded job's watermarks come from the record timestamps).

        :param key: the key of bytes and str records (none by default).
        :param timestamp_ms: the record timestamp of bytes and str records (the producer's clock by default).
        """
        count = 0
        for record in records:
            if isinstance(record, dict):
                value = json.dumps(record).encode()
                person = record.get("personId") or record.get("userId") or record.get("anonymousId") or ""
                record_key = str(person).encode() or None
                stamp = event_time_ms(record)
            else:
                value = record.encode() if isinstance(record, str) else record
                record_key = key.encode() if key else None
                stamp = timestamp_ms
            self.producer.send(topic, value=value, key=record_key, timestamp_ms=stamp)
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


def event_time_ms(doc: dict) -> int | None:
    """An event's ``timestamp`` (ISO 8601, as the tests' builders write it) in epoch ms; ``None`` without a usable
    one (the producer's clock then stamps the record)."""
    try:
        return int(datetime.fromisoformat(doc["timestamp"]).timestamp() * 1000)
    except (KeyError, TypeError, ValueError):
        return None
