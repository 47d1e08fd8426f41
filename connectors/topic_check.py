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

__all__ = ["retention_warning", "warn_if_replays_expire"]

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


def warn_if_replays_expire(bootstrap_servers: str, topic: str) -> str | None:
    """Log (and return) :func:`retention_warning` for ``topic`` as the broker describes it; silent when the
    broker cannot be asked, since the job's own connection errors say more."""
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
    configs = {key: str(entry["value"]) for key, entry in described.get("topic", {}).get(topic, {}).items()}
    warning = retention_warning(topic, configs)
    if warning:
        log.warning(warning)
    return warning
