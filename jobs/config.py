"""Job configs: YAML under ``flink-conf/jobs/``, validated at start with messages that name the bad key.

Every knob a data engineer tunes lives in these files. Values may reference the environment as
``${NAME}`` or ``${NAME:-default}``, so one file serves the sandbox and a real cluster.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from udfs.cart import CartPolicy, Reminder
from udfs.intent_config import BrowsePolicy, IntentWeights

__all__ = [
    "BrowseSettings",
    "CartSettings",
    "ClickstreamConfig",
    "DeliveryConfig",
    "SessionSettings",
    "Topics",
    "WeightSettings",
    "ConfigError",
    "EventTimeSettings",
    "KafkaSettings",
    "RedisSettings",
    "ProfileWriteSettings",
    "ReminderSettings",
    "load_config",
    "parse_duration_ms",
]

_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_DURATION = re.compile(r"^\s*(?P<amount>\d+)\s*(?P<unit>ms|s|m|h|d)\s*$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A job config that cannot be used; the message lists every bad key."""


def parse_duration_ms(value: Any) -> int:
    """'500ms', '30s', '15m', '1h', '7d' or a plain number of milliseconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30s', '15m', '1h' or '7d'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a duration; use a number and a unit: ms, s, m, h or d (e.g. '30s')")
    return int(match["amount"]) * _UNIT_MS[match["unit"]]


DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    bootstrap_servers: str
    group_id: str
    starting_offsets: Literal["earliest", "latest", "committed", "timestamp"] = "committed"
    start_timestamp_ms: int | None = Field(None, description="with starting_offsets: timestamp, the first record time")
    bounded: bool = Field(False, description="stop at the offsets that are latest at start (demo, tests, replays)")
    parallelism_from_partitions: bool = Field(
        True, description="run the job with at least one subtask per partition of the events topic"
    )

    @model_validator(mode="after")
    def _timestamp_given(self) -> KafkaSettings:
        if self.starting_offsets == "timestamp" and self.start_timestamp_ms is None:
            raise ValueError("starting_offsets 'timestamp' needs start_timestamp_ms (Kafka record time, ms)")
        return self


class RedisSettings(_Section):
    url: str
    profile_ttl: DurationMs = 30 * 86_400_000
    key_prefix: str = "profile:"

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, url: str) -> str:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{url!r} is not a Redis URL; use redis://host:port/db")
        return url


class EventTimeSettings(_Section):
    max_out_of_orderness: DurationMs = 30_000
    idleness: DurationMs = 60_000


class ReminderSettings(_Section):
    after: DurationMs
    template: str = Field(min_length=1)


class CartSettings(_Section):
    reminders: list[ReminderSettings] = Field(min_length=1)
    cooldown: DurationMs = 7 * 86_400_000
    max_reminders: int = Field(2, ge=1)
    dedup_window: int = Field(64, ge=0)
    state_ttl: DurationMs = 30 * 86_400_000
    follow_logins: bool = True
    max_anonymous_events: int = Field(256, ge=1)

    @field_validator("reminders")
    @classmethod
    def _increasing(cls, reminders: list[ReminderSettings]) -> list[ReminderSettings]:
        delays = [r.after for r in reminders]
        if any(b <= a for a, b in zip(delays, delays[1:], strict=False)):
            raise ValueError("each reminder's 'after' must be later than the one before it")
        return reminders

    @model_validator(mode="after")
    def _state_outlives_the_series(self) -> CartSettings:
        needed = self.reminders[min(self.max_reminders, len(self.reminders)) - 1].after + self.cooldown
        if self.state_ttl <= needed:
            raise ValueError(
                f"state_ttl ({self.state_ttl} ms) must be longer than the last reminder's 'after' plus 'cooldown' "
                f"({needed} ms), or state expires before its reminder or cooldown ends"
            )
        return self

    def to_policy(self) -> CartPolicy:
        """The rule's knobs as :mod:`udfs.cart` takes them."""
        return CartPolicy(
            reminders=tuple(Reminder(delay_ms=r.after, template=r.template) for r in self.reminders),
            cooldown_ms=self.cooldown,
            max_reminders=self.max_reminders,
            dedup_window=self.dedup_window,
        )


class Topics(_Section):
    events: str = "clickstream.events"
    dead_letter: str = "clickstream.dlq"
    triggers: str = "email.triggers"


class _JobConfig(_Section):
    """What every clickstream job has: where it reads and writes, event time, and raw Flink options."""

    job_name: str
    kafka: KafkaSettings
    topics: Topics = Topics()
    redis: RedisSettings
    event_time: EventTimeSettings = EventTimeSettings()
    flink: dict[str, str | int | bool] = Field(default_factory=dict, description="raw Flink options for this job")


class SessionSettings(_Section):
    gap: DurationMs = 30 * 60_000


class WeightSettings(_Section):
    """Score weights; udfs/intent.py documents the formula they enter."""

    view: float = Field(1.0, ge=0)
    cart_view: float = Field(2.0, ge=0)
    cart_add: float = Field(5.0, ge=0)
    checkout: float = Field(10.0, ge=0)
    repeat_view: float = Field(2.0, ge=0)
    category_view: float = Field(1.0, ge=0)
    half_life: DurationMs = 30 * 60_000
    scale: float = Field(20.0, gt=0)

    def to_weights(self) -> IntentWeights:
        """The weights as :mod:`udfs.intent` takes them."""
        return IntentWeights(
            view=self.view,
            cart_view=self.cart_view,
            cart_add=self.cart_add,
            checkout=self.checkout,
            repeat_view=self.repeat_view,
            category_view=self.category_view,
            half_life_ms=self.half_life,
            scale=self.scale,
        )


class BrowseSettings(_Section):
    min_product_views: int = Field(3, ge=1)
    min_category_views: int = Field(4, ge=1)
    high_intent_threshold: float | None = Field(70.0, ge=0, le=100)
    recent_products: int = Field(10, ge=1)
    top_categories: int = Field(3, ge=1)

    def to_policy(self) -> BrowsePolicy:
        """The browse rules as :mod:`udfs.intent` takes them."""
        return BrowsePolicy(
            min_product_views=self.min_product_views,
            min_category_views=self.min_category_views,
            high_intent_threshold=self.high_intent_threshold,
            recent_products=self.recent_products,
            top_categories=self.top_categories,
        )


class ProfileWriteSettings(_Section):
    """How the clickstream job sends profile writes to Redis (connectors/redis.py ``BatchedProfileWrites``)."""

    batch: int = Field(100, ge=1, description="writes per pipelined round trip; 1 writes each record at once")
    linger: DurationMs = Field(10, gt=0, description="the longest a write waits for its batch to fill")


class ClickstreamConfig(_JobConfig):
    """``flink-conf/jobs/clickstream.yaml``: the one job over the clickstream (carts, sessions, scores, traits)."""

    job_name: str = "clickstream"
    profile_writes: ProfileWriteSettings = ProfileWriteSettings()
    cart: CartSettings
    session: SessionSettings = SessionSettings()
    weights: WeightSettings = WeightSettings()
    browse: BrowseSettings = BrowseSettings()


def _expand_env(node: Any) -> Any:
    if isinstance(node, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m["name"], m["default"] or ""), node)
    if isinstance(node, dict):
        return {key: _expand_env(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_expand_env(value) for value in node]
    return node


def _describe(error: ValidationError, path: Path) -> str:
    lines = [f"{path} is not a valid job config:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against the documented keys)"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def load_config(path: Path | str, model: type[ModelT], overrides: dict[str, Any] | None = None) -> ModelT:
    """Read, expand ``${ENV}`` references, apply ``overrides`` (dotted keys) and validate."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read job config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a YAML mapping of settings, not {type(raw).__name__}")
    data = _expand_env(raw)
    for dotted, value in (overrides or {}).items():
        target = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


class DeliveryTopics(_Section):
    triggers: str = "email.triggers"
    deliveries: str = "email.deliveries"
    dead_letter: str = "email.dlq"


class SendGridSettings(_Section):
    api_key_env: str = "SENDGRID_API_KEY"
    base_url: str = "https://api.sendgrid.com"


class MailchimpSettings(_Section):
    api_key_env: str = "MAILCHIMP_API_KEY"
    base_url: str = "https://mandrillapp.com"


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(587, ge=1, le=65535)
    username_env: str | None = "SMTP_USERNAME"
    password_env: str | None = "SMTP_PASSWORD"  # noqa: S105 - the name of a variable, not a secret
    starttls: bool = True
    verify_tls: bool = True


class WebhookSettings(_Section):
    url: str = "http://127.0.0.1:8025/webhook/email"
    secret_env: str = "WEBHOOK_SECRET"  # noqa: S105 - the name of a variable, not a secret


ProviderName = Literal["sendgrid", "mailchimp", "smtp", "webhook"]


class ProviderSettings(_Section):
    """Which provider sends, which take over when it stays down, and how to reach each."""

    primary: ProviderName = "sendgrid"
    fallbacks: list[ProviderName] = Field(default_factory=list)
    timeout: DurationMs = Field(10_000, gt=0, description="connect and answer timeout of every provider call")
    sendgrid: SendGridSettings = SendGridSettings()
    mailchimp: MailchimpSettings = MailchimpSettings()
    smtp: SmtpSettings = SmtpSettings()
    webhook: WebhookSettings = WebhookSettings()

    @model_validator(mode="after")
    def _distinct(self) -> ProviderSettings:
        if self.primary in self.fallbacks:
            raise ValueError(f"fallbacks repeat the primary provider {self.primary!r}")
        return self


class RetrySettings(_Section):
    max_attempts: int = Field(4, ge=1)
    budget: DurationMs = 15_000
    initial_backoff: DurationMs = 500
    max_backoff: DurationMs = 8_000
    breaker_failures: int = Field(5, ge=1)
    breaker_reset: DurationMs = 30_000
    defer_initial: DurationMs = 60_000
    defer_max: DurationMs = 3_600_000
    give_up_after: DurationMs = 2 * 86_400_000
    reconcile_after: DurationMs = Field(
        30_000, description="after a send whose outcome is unknown (timeout, 5xx): ask the provider after this long"
    )


class GuardrailSettings(_Section):
    holdout_percent: float = Field(10.0, ge=0, le=100)
    experiment: str = "default"
    variants: dict[str, float] = Field(default_factory=lambda: {"A": 50.0, "B": 50.0})
    frequency_cap: int = Field(2, ge=1)
    frequency_window: DurationMs = 86_400_000
    priorities: dict[str, int] = Field(
        default_factory=lambda: {"cart_abandonment": 30, "high_intent": 20, "browse_abandonment": 10}
    )
    quiet_start: str = "21:00"
    quiet_end: str = "08:00"
    default_timezone: str = "UTC"
    max_trigger_age: DurationMs = 3 * 86_400_000


class SenderSettings(_Section):
    from_email: str
    from_name: str = "Our shop"
    postal_address: str = Field(min_length=1, description="the postal address every email must show")


class LinkSettings(_Section):
    shop_url: str
    cart_url: str
    unsubscribe_url: str
    unsubscribe_secret_env: str = "UNSUBSCRIBE_SECRET"  # noqa: S105 - a variable name


class DeliveryConfig(_Section):
    """``flink-conf/jobs/email_delivery.yaml``."""

    job_name: str = "email-delivery"
    kafka: KafkaSettings
    topics: DeliveryTopics = DeliveryTopics()
    redis: RedisSettings
    ledger_prefix: str = "delivery:"
    providers: ProviderSettings = ProviderSettings()
    retries: RetrySettings = RetrySettings()
    guardrails: GuardrailSettings = GuardrailSettings()
    sender: SenderSettings
    links: LinkSettings
    templates_dir: str = Field("templates", description="email templates; a relative path is resolved at submit")
    catalog_file: str | None = Field(None, description="JSON product_id -> {name, price, image_url, url, category}")
    flink: dict[str, str | int | bool] = Field(default_factory=dict, description="raw Flink options for this job")
