"""Ask the broker whether an output topic would delete what a job writes to it before anyone reads it.

The jobs stamp each record with its event time. On a topic that keeps the producer's stamp (CreateTime)
under time retention, a replay of clicks older than the retention writes records the broker deletes at
its next retention check: triggers and dead letters lost without an error. The check only warns, since
the topic is the user's; README's Topics section says how to create it.
"""

from __future__ import annotations

import logging

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import KafkaError

__all__ = ["event_time_warning", "retention_warning", "warn_if_event_time_lost", "warn_if_replays_expire"]

log = logging.getLogger(__name__)

_CHECKED = ("message.timestamp.type", "retention.ms")


def retention_warning(topic: str, configs: dict[str, str]) -> str | None:
    """The warning for a topic with these effective configs, or ``None`` when replayed records are safe."""
    if configs.get("message.timestamp.type", "CreateTime") != "CreateTime":
        return None
    retention_ms = int(configs.get("retention.ms", "604800000"))
    if retention_ms < 0:
        return None
    return (
        f"topic {topic} keeps each record's own timestamp (message.timestamp.type=CreateTime) and deletes records "
        f"older than retention.ms={retention_ms}: this job stamps records with event time, so what it writes while "
        f"replaying events older than {retention_ms // 3_600_000} h is deleted at the broker's next retention check. "
        f"Set message.timestamp.type=LogAppendTime on {topic}."
    )


def event_time_warning(topic: str, configs: dict[str, str]) -> str | None:
    """The warning for the events topic the clickstream job reads, or ``None`` when its records keep event time.

    The job makes its watermarks from the record timestamps, which the collector sets to each event's time: a
    topic that stamps records when they are written (LogAppendTime) would judge a replay or a backlog by its
    arrival, and dead-letter it as late.
    """
    if configs.get("message.timestamp.type", "CreateTime") == "LogAppendTime":
        return (
            f"topic {topic} stamps records when the broker writes them (message.timestamp.type=LogAppendTime): this "
            f"job makes its watermarks from record timestamps, so replayed or delayed events would arrive behind "
            f"them and be dead-lettered as late. Set message.timestamp.type=CreateTime on {topic} (README, 'Event "
            f"time')."
        )
    retention_ms = int(configs.get("retention.ms", "604800000"))
    if retention_ms >= 0:
        return (
            f"topic {topic} deletes records older than retention.ms={retention_ms} by their timestamp, which is the "
            f"event's time: a replay of events older than {retention_ms // 3_600_000} h is deleted at the broker's "
            f"next retention check, possibly before this job reads it. Keep {topic} by size (retention.ms=-1 and "
            f"retention.bytes), as flink-conf/topics.yaml does."
        )
    return None


def warn_if_event_time_lost(bootstrap_servers: str, topic: str) -> str | None:
    """Log (and return) :func:`event_time_warning` for the events topic as the broker describes it."""
    configs = _topic_configs(bootstrap_servers, topic)
    warning = event_time_warning(topic, configs) if configs is not None else None
    if warning:
        log.warning(warning)
    return warning


def warn_if_replays_expire(bootstrap_servers: str, topic: str) -> str | None:
    """Log (and return) :func:`retention_warning` for ``topic`` as the broker describes it; silent when the
    broker cannot be asked, since the job's own connection errors say more."""
    configs = _topic_configs(bootstrap_servers, topic)
    warning = retention_warning(topic, configs) if configs is not None else None
    if warning:
        log.warning(warning)
    return warning


def _topic_configs(bootstrap_servers: str, topic: str) -> dict[str, str] | None:
    """The topic's effective configs we check, or ``None`` when the broker cannot be asked."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","), request_timeout_ms=10_000)
        try:
            resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict.fromkeys(_CHECKED))
            described = admin.describe_configs([resource], config_filter="all")
        finally:
            admin.close()
    except KafkaError as exc:
        log.info("could not ask Kafka how %s keeps records (%s)", topic, exc)
        return None
    return {key: str(entry["value"]) for key, entry in described.get("topic", {}).get(topic, {}).items()}
