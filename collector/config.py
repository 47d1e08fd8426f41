"""The collector's settings: one frozen object, and the only place in ``collector/`` that reads the environment.

Every setting is an environment variable. Collector-specific ones start with ``COLLECTOR_``; the broker and
Redis use the same names as the jobs and the sandbox (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``), so
``make up`` points everything at the same services. Durations are written like the job configs: ``500ms``,
``30s``, ``15m``, ``1h``, ``7d``.

=====================================  ==========================  =============================================
variable                               default                     meaning
=====================================  ==========================  =============================================
``COLLECTOR_HOST``                     ``127.0.0.1``               address to listen on
``COLLECTOR_PORT``                     ``8080``                    port to listen on
``COLLECTOR_WRITE_KEYS``               ``demo-write-key``          accepted write keys, comma-separated (secret)
``KAFKA_BOOTSTRAP_SERVERS``            ``127.0.0.1:9092``          the broker(s)
``REDIS_URL``                          ``redis://127.0.0.1:6379/0`` dedup and identity store (secret: may hold a
                                                                   password)
``COLLECTOR_EVENTS_TOPIC``             ``clickstream.events``      where accepted events go
``COLLECTOR_DLQ_TOPIC``                ``clickstream.dlq``         where rejected events go
``COLLECTOR_DEDUP_WINDOW``             ``24h``                     a repeated ``messageId`` within it is dropped
``COLLECTOR_DEDUP_PENDING_TTL``        ``10m``                     how long an in-flight claim blocks a retry
``COLLECTOR_IDENTITY_TTL``             ``365d``                    how long an anonymousId → userId link lasts
``COLLECTOR_MAX_FUTURE``               ``24h``                     reject events further ahead (after skew fix)
``COLLECTOR_MAX_AGE``                  ``730d``                    reject events older than this
``COLLECTOR_PRODUCE_TIMEOUT``          ``10s``                     wait this long for the broker's acks, then 503
``COLLECTOR_KAFKA_CONNECT_TIMEOUT``    ``5s``                      one attempt to reach the broker
``COLLECTOR_KAFKA_LINGER``             ``5ms``                     producer batching delay
``COLLECTOR_KAFKA_COMPRESSION``        ``lz4``                     ``lz4``, ``gzip`` or ``none``
``COLLECTOR_REDIS_TIMEOUT``            ``2s``                      per Redis command
``COLLECTOR_RETRY_AFTER``              ``5s``                      the ``Retry-After`` of a 503
``COLLECTOR_MAX_EVENT_BYTES``          ``32768``                   one call, or one event of a batch (Segment)
``COLLECTOR_MAX_BATCH_BYTES``          ``512000``                  one ``/v1/batch`` body (Segment: 500 KB)
``COLLECTOR_CORS_ORIGINS``             ``*``                       origins allowed to send from a browser
``COLLECTOR_HEARTBEAT_INTERVAL``       ``1s``                      watermark heartbeats to idle partitions of
                                                                   the events topic; ``0`` turns them off; at
                                                                   most ``1m`` (collector/heartbeat.py)
``COLLECTOR_HEARTBEAT_RESUME_WITHIN``  ``1h``                      a restarted collector resumes an event clock
                                                                   saved in Redis this recently (``0``: never)
=====================================  ==========================  =============================================
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobs.config import parse_duration_ms

__all__ = ["DEFAULT_WRITE_KEY", "CollectorSettings", "load_settings", "parse_duration_ms"]

DEFAULT_WRITE_KEY = "demo-write-key"

DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]


def _off_or_duration_ms(value: Any) -> int:
    """A duration, or a bare ``0`` for "off" (``COLLECTOR_HEARTBEAT_INTERVAL=0``)."""
    return 0 if isinstance(value, str) and value.strip() == "0" else parse_duration_ms(value)


_OffOrDurationMs = Annotated[int, BeforeValidator(_off_or_duration_ms)]


class CollectorSettings(BaseSettings):
    """Everything the collector can be told; built once at start and passed down, never read again."""

    model_config = SettingsConfigDict(env_prefix="COLLECTOR_", frozen=True, extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    write_keys: SecretStr = SecretStr(DEFAULT_WRITE_KEY)
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers")
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), validation_alias=AliasChoices("REDIS_URL", "redis_url")
    )
    events_topic: str = "clickstream.events"
    dlq_topic: str = "clickstream.dlq"
    dedup_window_ms: DurationMs = Field(86_400_000, validation_alias=AliasChoices("COLLECTOR_DEDUP_WINDOW"))
    dedup_pending_ttl_ms: DurationMs = Field(600_000, validation_alias=AliasChoices("COLLECTOR_DEDUP_PENDING_TTL"))
    identity_ttl_ms: DurationMs = Field(365 * 86_400_000, validation_alias=AliasChoices("COLLECTOR_IDENTITY_TTL"))
    max_future_ms: DurationMs = Field(86_400_000, validation_alias=AliasChoices("COLLECTOR_MAX_FUTURE"))
    max_age_ms: DurationMs = Field(730 * 86_400_000, validation_alias=AliasChoices("COLLECTOR_MAX_AGE"))
    produce_timeout_ms: DurationMs = Field(10_000, validation_alias=AliasChoices("COLLECTOR_PRODUCE_TIMEOUT"))
    kafka_connect_timeout_ms: DurationMs = Field(
        5_000, validation_alias=AliasChoices("COLLECTOR_KAFKA_CONNECT_TIMEOUT")
    )
    kafka_linger_ms: DurationMs = Field(5, validation_alias=AliasChoices("COLLECTOR_KAFKA_LINGER"))
    kafka_compression: str = "lz4"
    redis_timeout_ms: DurationMs = Field(2_000, validation_alias=AliasChoices("COLLECTOR_REDIS_TIMEOUT"))
    retry_after_ms: DurationMs = Field(5_000, validation_alias=AliasChoices("COLLECTOR_RETRY_AFTER"))
    max_event_bytes: int = Field(32 * 1024, ge=1024)
    max_batch_bytes: int = Field(500 * 1024, ge=1024)
    cors_origins: str = "*"
    # The unsubscribe link in every email lands here; the same secret signs it in the delivery job.
    unsubscribe_secret: SecretStr | None = Field(None, repr=False, validation_alias=AliasChoices("UNSUBSCRIBE_SECRET"))
    unsubscribe_max_age_ms: DurationMs = Field(
        365 * 86_400_000, validation_alias=AliasChoices("COLLECTOR_UNSUBSCRIBE_MAX_AGE")
    )
    ledger_prefix: str = Field("delivery:", validation_alias=AliasChoices("DELIVERY_LEDGER_PREFIX"))
    heartbeat_interval_ms: _OffOrDurationMs = Field(
        1_000, le=60_000, validation_alias=AliasChoices("COLLECTOR_HEARTBEAT_INTERVAL")
    )
    heartbeat_resume_within_ms: _OffOrDurationMs = Field(
        3_600_000, validation_alias=AliasChoices("COLLECTOR_HEARTBEAT_RESUME_WITHIN")
    )

    @field_validator("kafka_compression")
    @classmethod
    def _known_codec(cls, value: str) -> str:
        if value not in ("lz4", "gzip", "none"):
            raise ValueError(f"{value!r} is not a supported codec; use lz4, gzip or none")
        return value

    @field_validator("write_keys")
    @classmethod
    def _some_key(cls, value: SecretStr) -> SecretStr:
        if not [key for key in value.get_secret_value().split(",") if key.strip()]:
            raise ValueError("at least one write key is needed (comma-separated)")
        return value

    @model_validator(mode="after")
    def _resume_spans_an_interval(self) -> CollectorSettings:
        # The clock is saved once per interval: a shorter resume window would never find it fresh.
        if 0 < self.heartbeat_resume_within_ms < self.heartbeat_interval_ms:
            raise ValueError(
                "COLLECTOR_HEARTBEAT_RESUME_WITHIN must be at least COLLECTOR_HEARTBEAT_INTERVAL (or 0 to never resume)"
            )
        return self

    def write_key_list(self) -> list[bytes]:
        """The accepted write keys, as bytes for a constant-time comparison."""
        return [key.strip().encode() for key in self.write_keys.get_secret_value().split(",") if key.strip()]

    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]


def load_settings(**overrides: Any) -> CollectorSettings:
    """Read the environment once; ``overrides`` (field names) win, for tests and the bench."""
    return CollectorSettings(**overrides)
