"""Reads a whole topic once (committed records only), showing progress: for reports, not for pipelines."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

__all__ = ["read_topic"]


def read_topic(bootstrap: str, topic: str, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        total = sum(end.values())
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    try:
                        records.append(json.loads(record.value))
                    except ValueError:
                        continue  # dead letters are another topic's business
            print(f"\r{topic}: {len(records)}/{total} records", end="", file=sys.stderr)
        print(file=sys.stderr)
        return records
    finally:
        consumer.close()
