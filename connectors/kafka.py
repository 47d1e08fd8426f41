"""Factories for the Flink Kafka connector, so jobs never spell out builder chains.

Uses ``pyflink.datastream.connectors.kafka`` (the FLIP-27 ``KafkaSource``/``KafkaSink``); the legacy
``FlinkKafkaConsumer``/``FlinkKafkaProducer`` classes still exist in the 2.x wheel but fail at run time.
"""

from __future__ import annotations

from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)

from jobs.config import KafkaSettings

__all__ = ["kafka_sink", "kafka_source"]

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


def kafka_sink(kafka: KafkaSettings, topic: str, exactly_once: bool, transactional_id_prefix: str) -> KafkaSink:
    """A sink of strings; exactly-once writes in Kafka transactions committed on each checkpoint."""
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
