"""A single-node Apache Kafka 4 broker in KRaft mode, run straight from its Maven jars."""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from sandbox.preflight import require_jars, require_java
from sandbox.process import ManagedProcess, ServiceError
from sandbox.settings import SandboxSettings

__all__ = ["create_topics", "kafka_process", "load_topics"]

log = logging.getLogger(__name__)

_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="stdout"/></Root>
  </Loggers>
</Configuration>
"""


def _server_properties(s: SandboxSettings, log_dir: Path) -> str:
    return f"""# written by sandbox/kafka.py; edit the code, not this file
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={s.host}:{s.kafka_controller_port}
listeners=PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}
advertised.listeners=PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dir}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Flink's exactly-once sink keeps transactions open up to a checkpoint interval plus its timeout.
transaction.max.timeout.ms=900000
log.retention.hours=168
"""


def kafka_process(s: SandboxSettings) -> ManagedProcess:
    """Write the broker's config, format its storage once, and describe the broker process."""
    java = require_java()
    jars_dir = s.jars_dir / "kafka"
    require_jars(jars_dir, "Kafka broker")
    conf_dir = s.home / "kafka"
    data_dir = s.data_dir / "kafka"
    conf_dir.mkdir(parents=True, exist_ok=True)
    props = conf_dir / "server.properties"
    props.write_text(_server_properties(s, data_dir))
    log4j = conf_dir / "log4j2.xml"
    log4j.write_text(_LOG4J2)
    classpath = f"{jars_dir}/*"
    jvm = [java, "-Xms256m", "-Xmx1g", "-cp", classpath, f"-Dlog4j2.configurationFile={log4j}"]
    if not (data_dir / "meta.properties").exists():
        _format_storage(jvm, props, data_dir, s.logs_dir / "kafka-format.log")
    return ManagedProcess(
        name="kafka",
        argv=[*jvm, "kafka.Kafka", str(props)],
        run_dir=s.run_dir,
        logs_dir=s.logs_dir,
        host=s.host,
        port=s.kafka_port,
        start_timeout_s=90.0,
    )


def _format_storage(jvm: list[str], props: Path, data_dir: Path, log_file: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(  # noqa: S603 - fixed argv
        [
            *jvm,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            f"--cluster-id={_new_cluster_id()}",
            "-c",
            str(props),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    log_file.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise ServiceError(
            f"Formatting Kafka's storage in {data_dir} failed (exit {result.returncode}); see {log_file}:\n"
            f"{(result.stdout + result.stderr)[-2000:]}"
        )


def _new_cluster_id() -> str:
    """Kafka cluster ids are 16 random bytes in URL-safe base64 without padding. One in 64 starts with
    '-', which is why it is passed as ``--cluster-id=<id>`` and never as a separate argument."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass(frozen=True)
class TopicSpec:
    partitions: int
    config: dict[str, str]


def load_topics(path: Path) -> dict[str, TopicSpec]:
    """Read the topic list (name → partitions and Kafka topic configs) that the sandbox creates."""
    data = yaml.safe_load(path.read_text()) or {}
    topics = data.get("topics")
    if not isinstance(topics, dict) or not topics:
        raise ServiceError(f"{path}: 'topics' must be a mapping of topic name to settings such as {{partitions: 4}}.")
    result: dict[str, TopicSpec] = {}
    for name, spec in topics.items():
        spec = spec or {}
        partitions = spec.get("partitions", 1)
        if not isinstance(partitions, int) or partitions < 1:
            raise ServiceError(f"{path}: topics.{name}.partitions must be a positive integer, got {partitions!r}.")
        config = spec.get("config") or {}
        if not isinstance(config, dict):
            raise ServiceError(f"{path}: topics.{name}.config must map Kafka topic configs to values, got {config!r}.")
        result[str(name)] = TopicSpec(partitions, {str(k): str(v) for k, v in config.items()})
    return result


def create_topics(s: SandboxSettings) -> list[str]:
    """Create missing topics with their partition counts and configs, and set the configs on topics made
    before a config was added to the list; returns the topics created."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    wanted = load_topics(s.topics_file)
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, client_id="sandbox-admin", request_timeout_ms=30000)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name=name, num_partitions=spec.partitions, replication_factor=1, topic_configs=spec.config)
            for name, spec in wanted.items()
            if name not in existing
        ]
        for topic in missing:
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass
        configured = [
            ConfigResource(ConfigResourceType.TOPIC, name, configs=spec.config)
            for name, spec in wanted.items()
            if name in existing and spec.config
        ]
        if configured:
            admin.alter_configs(configured)
        return [t.name for t in missing]
    finally:
        admin.close()
