"""Factories for the Flink Kafka connector, so jobs never spell out builder chains.

Uses ``pyflink.datastream.connectors.kafka`` (the FLIP-27 ``KafkaSource``/``KafkaSink``); the legacy
``FlinkKafkaConsumer``/``FlinkKafkaProducer`` classes still exist in the 2.x wheel but fail at run time.
"""

from __future__ import annotations

import logging

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)

from connectors.topic_check import warn_if_replays_expire
from jobs.config import KafkaSettings

__all__ = ["kafka_sink", "kafka_source", "partition_count"]

log = logging.getLogger(__name__)

# Flink's exactly-once sink holds a transaction open for up to a checkpoint interval; the broker's
# transaction.max.timeout.ms (15 min in the sandbox, 15 min by default) must be at least this.
TRANSACTION_TIMEOUT_MS = 600_000


def _starting_offsets(kafka: KafkaSettings) -> KafkaOffsetsInitializer:
    mode = kafka.starting_offsets
    if mode == "timestamp" and kafka.start_timestamp_ms is not None:
        return KafkaOffsetsInitializer.timestamp(kafka.start_timestamp_ms)
    if mode == "earliest":
        return KafkaOffsetsInitializer.earliest()
    if mode == "latest":
        return KafkaOffsetsInitializer.latest()
    return KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)


def kafka_source(kafka: KafkaSettings, topic: str) -> KafkaSource:
    """A source of UTF-8 strings (invalid bytes become U+FFFD, so parsing, not decoding, rejects them)."""
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(kafka.bootstrap_servers)
        .set_topics(topic)
        .set_group_id(kafka.group_id)
        .set_starting_offsets(_starting_offsets(kafka))
        .set_value_only_deserializer(SimpleStringSchema())
        .set_property("commit.offsets.on.checkpoint", "true")
        .set_property("partition.discovery.interval.ms", "60000")
    )
    if kafka.bounded:
        builder = builder.set_bounded(KafkaOffsetsInitializer.latest())
    return builder.build()


def partition_count(kafka: KafkaSettings, topic: str) -> int | None:
    """How many partitions ``topic`` has, asked of the broker; ``None`` (with a warning) when it cannot say."""
    try:
        consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers.split(","), request_timeout_ms=10_000)
        try:
            partitions = consumer.partitions_for_topic(topic)
        finally:
            consumer.close()
    except KafkaError as exc:
        log.warning("could not ask Kafka how many partitions %s has (%s)", topic, exc)
        return None
    if not partitions:
        log.warning("topic %s has no partitions yet", topic)
        return None
    return len(partitions)


def kafka_sink(kafka: KafkaSettings, topic: str, exactly_once: bool, transactional_id_prefix: str) -> KafkaSink:
    """A sink of strings; exactly-once writes in Kafka transactions committed on each checkpoint."""
    warn_if_replays_expire(kafka.bootstrap_servers, topic)
    serializer = (
        KafkaRecordSerializationSchema.builder()
        .set_topic(topic)
        .set_value_serialization_schema(SimpleStringSchema())
        .build()
    )
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(kafka.bootstrap_servers)
        .set_record_serializer(serializer)
        .set_property("compression.type", "lz4")
    )
    if exactly_once:
        builder = (
            builder.set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
            .set_transactional_id_prefix(transactional_id_prefix)
            .set_property("transaction.timeout.ms", str(TRANSACTION_TIMEOUT_MS))
        )
    else:
        builder = builder.set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
    return builder.build()
