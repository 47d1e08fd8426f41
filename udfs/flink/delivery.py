"""The delivery operator: per person, decide, claim, render, send, record; deferred emails wait in state.

Every path ends in one record on ``email.deliveries``. The send path is at-most-once per trigger:
the trigger is claimed in Redis before the provider is called and marked sent after it accepts.
A claim left in ``sending`` by a crash is reconciled with the provider before anything is resent.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from connectors.delivery_ledger import Claim, DeliveryLedger
from connectors.errors import PermanentError, TransientError
from connectors.esp.message import EmailMessage
from connectors.esp.registry import build_providers
from connectors.esp.resilience import AllProvidersDown, ResilientSender, RetryPolicy, SendOutcomeUnknown
from connectors.redis import ProfileStore
from jobs.config import DeliveryConfig
from udfs.delivery import DeliveryRecord, InvalidTrigger, Trigger, parse_trigger
from udfs.email_content import ContentConfig, InvalidContent, build_view_model
from udfs.events import dead_letter_record
from udfs.flink.state import ttl_config
from udfs.guardrails import GuardrailPolicy, InvalidProfile, Verdict, decide, queue_order
from udfs.render import Renderer, RenderError

__all__ = ["DEAD_LETTER", "TRIGGER_ROW", "DeliveryFunction", "KeyTriggers"]

log = logging.getLogger(__name__)

TRIGGER_ROW = Types.ROW_NAMED(["person_id", "payload"], [Types.STRING(), Types.STRING()])
DEAD_LETTER = OutputTag("delivery-dead-letter", Types.STRING())
#: how long the job remembers a trigger's recorded outcome: as long as the ledger keeps its claim
RECORDED_TTL_MS = DeliveryLedger.CLAIM_TTL_MS


def _now_ms() -> int:
    return int(time.time() * 1000)


def _load_catalog(path: str | None) -> dict[str, Any]:
    """Product names, prices and images for recommendations and browse emails; none without a file."""
    if not path:
        return {}
    with open(path, encoding="utf-8") as source:
        catalog = json.load(source)
    if not isinstance(catalog, dict):
        raise ValueError(f"{path}: the catalog must be a JSON object of product_id -> product")
    return catalog


class KeyTriggers(ProcessFunction):
    """Validates trigger records; unusable ones go to the dead-letter topic with the field named."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def process_element(self, value: str, ctx: ProcessFunction.Context) -> Iterator[Any]:
        try:
            trigger = parse_trigger(value)
        except InvalidTrigger as exc:
            yield DEAD_LETTER, dead_letter_record(value, exc, self.stage).decode()
            return
        yield Row(trigger.person_id, value)


class DeliveryFunction(KeyedProcessFunction):
    """Keyed by person; pending (deferred) triggers live in map state until their processing-time timer."""

    def __init__(self, cfg: DeliveryConfig) -> None:
        self.cfg = cfg

    # lifecycle ------------------------------------------------------------------------------------

    def open(self, runtime_context: RuntimeContext) -> None:
        cfg = self.cfg
        self.pending = runtime_context.get_map_state(MapStateDescriptor("pending", Types.STRING(), Types.STRING()))
        # trigger id → final status recorded: in the same checkpoint as the output's transaction, so after a crash
        # it holds exactly the outcomes that reached email.deliveries (kept as long as the ledger keeps claims)
        recorded = MapStateDescriptor("recorded", Types.STRING(), Types.STRING())
        recorded.enable_time_to_live(ttl_config(RECORDED_TTL_MS))
        self.recorded = runtime_context.get_map_state(recorded)
        self.profiles = ProfileStore(cfg.redis.url, cfg.redis.key_prefix, cfg.redis.profile_ttl)
        self.profiles.setup()
        self.ledger = DeliveryLedger(cfg.redis.url, cfg.ledger_prefix)
        self.ledger.setup()
        providers = build_providers(cfg.providers)
        self.providers = {p.name: p for p in providers}
        r = cfg.retries
        self.sender = ResilientSender(
            providers,
            RetryPolicy(
                max_attempts=r.max_attempts,
                max_elapsed_s=r.budget / 1000,
                initial_backoff_s=r.initial_backoff / 1000,
                max_backoff_s=r.max_backoff / 1000,
                breaker_fail_max=r.breaker_failures,
                breaker_reset_s=r.breaker_reset / 1000,
            ),
            on_credentials=self._credentials_changed,
        )
        g = cfg.guardrails
        self.policy = GuardrailPolicy(
            holdout_percent=g.holdout_percent,
            experiment=g.experiment,
            variants=tuple(g.variants.items()),
            frequency_cap=g.frequency_cap,
            frequency_window_ms=g.frequency_window,
            priorities=dict(g.priorities),
            quiet_start=g.quiet_start,
            quiet_end=g.quiet_end,
            default_timezone=g.default_timezone,
            max_trigger_age_ms=g.max_trigger_age,
        )
        secret = os.environ.get(cfg.links.unsubscribe_secret_env, "")
        self.content = ContentConfig(
            shop_name=cfg.sender.from_name,
            shop_url=cfg.links.shop_url,
            cart_url=cfg.links.cart_url,
            unsubscribe_base_url=cfg.links.unsubscribe_url,
            unsubscribe_secret=secret.encode(),
            physical_address=cfg.sender.postal_address,
        )
        self.renderer = Renderer(cfg.templates_dir)
        self.catalog = _load_catalog(cfg.catalog_file)
        metrics = runtime_context.get_metrics_group()
        self.counters = {
            status: metrics.counter(f"deliveries_{status}")
            for status in ("sent", "suppressed", "deferred", "failed", "uncertain")
        }
        self.credentials_refused = {
            name: metrics.add_group("provider", name).counter("credentials_refused") for name in self.providers
        }

    def _credentials_changed(self, provider: str, problem: str | None) -> None:
        """A provider started (or stopped) refusing its key: said and counted once by the whole job."""
        try:
            first = self.ledger.first_to_report(provider, problem, hold_ms=self.cfg.retries.give_up_after)
        except TransientError:
            first = True  # better said twice than not at all
        if not first:
            return
        if problem is None:
            log.warning("%s takes its credential again; its emails go to it again", provider)
            return
        self.credentials_refused[provider].inc()
        log.error("%s; its emails go to the fallback providers until the credential is fixed", problem)

    def close(self) -> None:
        self.profiles.close()
        self.ledger.close()
        for provider in self.providers.values():
            provider.close()

    # Flink callbacks ------------------------------------------------------------------------------

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        trigger = parse_trigger(value[1], self.policy.priorities)
        self._rearm(ctx)
        if self.recorded.contains(trigger.trigger_id) or self.pending.contains(trigger.trigger_id):
            # In again after its outcome was recorded (or while it waits): a note, not a second outcome.
            yield self._emit(self._record(trigger, "suppressed", "duplicate", None, 0, None, None, "seen before"))
            return
        yield from self._consider(trigger, attempt=0, first_seen_ms=_now_ms(), ctx=ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        due = []
        for trigger_id, raw in list(self.pending.items()):
            entry = json.loads(raw)
            if entry["not_before_ms"] <= timestamp:
                due.append((parse_trigger(entry["trigger"], self.policy.priorities), entry))
                self.pending.remove(trigger_id)
        for trigger, entry in sorted(due, key=lambda pair: queue_order(pair[0])):
            yield from self._consider(trigger, entry["attempt"], entry["first_seen_ms"], ctx)

    # decisions ------------------------------------------------------------------------------------

    def _consider(self, trigger: Trigger, attempt: int, first_seen_ms: int, ctx: Any) -> Iterator[Any]:
        try:
            claim = self.ledger.get(trigger.trigger_id)
            settled = self._settle(trigger, claim, attempt) if claim is not None else None
        except TransientError as exc:  # Redis, or the provider to ask, is unreachable: look again later
            yield from self._retry_later(trigger, attempt, first_seen_ms, None, str(exc), exc.retry_after, ctx)
            return
        if settled is not None:  # decided (or sent) before a restart: record what happened, decide nothing new
            yield self._emit(settled)
            return
        now = _now_ms()
        try:
            profile = self.profiles.read(trigger.person_id)
            email = profile.get("email", "")
            suppressed = bool(email) and self.ledger.is_suppressed(email)
            sends = self.ledger.sends_since(trigger.person_id, now - self.policy.frequency_window_ms)
            verdict = decide(trigger, profile, suppressed, sends, now, self.policy)
        except InvalidProfile as exc:
            yield from self._fail(trigger, "bad_profile", str(exc), attempt, None, ctx)
            return
        except TransientError as exc:  # Redis is unreachable: keep the trigger and look again later
            yield from self._retry_later(trigger, attempt, first_seen_ms, None, str(exc), None, ctx)
            return
        if verdict.action == "suppress":
            yield self._emit(verdict.to_record(trigger, now, attempt=attempt))
        elif verdict.action == "defer":
            self._park(trigger, attempt, first_seen_ms, verdict.send_after_ms or now, ctx)
            yield self._emit(verdict.to_record(trigger, now, attempt=attempt))
        else:
            yield from self._send(trigger, profile, verdict, attempt, first_seen_ms, ctx)

    def _send(
        self, trigger: Trigger, profile: dict[str, str], verdict: Verdict, attempt: int, first_seen_ms: int, ctx: Any
    ) -> Iterator[Any]:
        primary = self.sender.providers[0].name
        try:
            previous = self.ledger.claim(trigger.trigger_id, primary)
        except TransientError as exc:  # Redis: nothing was sent; a claim it may have taken is settled next time
            yield from self._retry_later(trigger, attempt, first_seen_ms, verdict, str(exc), None, ctx)
            return
        if previous is not None and (previous.state != "sending" or previous.provider is not None):
            # Someone else's claim (another instance of this job?): never send over it.
            yield self._emit(
                self._record(trigger, "suppressed", "duplicate", verdict, attempt, previous.provider, None, "claimed")
            )
            return
        now = _now_ms()
        try:
            view = build_view_model(
                trigger.payload, profile, self.catalog, verdict.variant or "A", self.content, issued_at=now // 1000
            )
            rendered = self.renderer.render(trigger.template, view, verdict.variant or "A")
        except (InvalidContent, RenderError) as exc:
            self._note(trigger, Claim("failed", None, None, now, "bad_template_data"))
            yield from self._fail(trigger, "bad_template_data", str(exc), attempt, verdict, ctx)
            return
        message = EmailMessage(
            trigger_id=trigger.trigger_id,
            to_email=view["email"],
            to_name=view.get("first_name"),
            from_email=self.cfg.sender.from_email,
            from_name=self.cfg.sender.from_name,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            headers={
                "List-Unsubscribe": f"<{rendered.unsubscribe_url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            metadata={"template": trigger.template, "variant": verdict.variant or "", "person_id": trigger.person_id},
        )
        try:
            result = self.sender.send(message, before_provider=lambda name: self._mark_calling(trigger, name))
        except PermanentError as exc:
            self._note(trigger, Claim("failed", None, None, _now_ms(), "provider_rejected"))
            yield from self._fail(trigger, "provider_rejected", exc.detail or str(exc), attempt, verdict, ctx)
            return
        except SendOutcomeUnknown as exc:
            # As after a crash mid-send: the claim names the provider; ask it before anything is sent again.
            detail = f"{exc}; asking {exc.provider} in {self.cfg.retries.reconcile_after} ms before any resend"
            yield from self._retry_later(
                trigger,
                attempt,
                first_seen_ms,
                verdict,
                detail,
                None,
                ctx,
                reason="outcome_unknown",
                delay_ms=self.cfg.retries.reconcile_after,
            )
            return
        except AllProvidersDown as exc:
            try:
                self.ledger.release(trigger.trigger_id)
            except TransientError:
                pass  # the claim names no provider that took it: settled as "not sent" next time
            yield from self._retry_later(trigger, attempt, first_seen_ms, verdict, str(exc), exc.retry_after, ctx)
            return
        except TransientError as exc:  # Redis, marking whom we call: that provider is asked next time
            yield from self._retry_later(trigger, attempt, first_seen_ms, verdict, str(exc), None, ctx)
            return
        sent_at = _now_ms()
        try:
            self.ledger.update(trigger.trigger_id, Claim("sent", result.provider, result.message_id, sent_at))
            self.ledger.record_send(trigger.person_id, sent_at, trigger.trigger_id, self.policy.frequency_window_ms)
        except TransientError as exc:
            # Sent all the same, and recorded so; the claim still names the provider, so a replay asks it first.
            log.warning("trigger %s was sent but Redis did not take its claim: %s", trigger.trigger_id, exc)
        yield self._emit(self._record(trigger, "sent", None, verdict, attempt, result.provider, result.message_id))

    def _mark_calling(self, trigger: Trigger, provider: str) -> None:
        """Before each provider is called: the claim names it, so a crash can be reconciled with the right one."""
        self.ledger.update(trigger.trigger_id, Claim("sending", provider, None, _now_ms()))

    def _settle(self, trigger: Trigger, claim: Claim, attempt: int) -> DeliveryRecord | None:
        """A claim was already there (a restart, or an unknown outcome): the record to write, or None when no
        provider has the message and the trigger is to be decided afresh.

        The job's own state says which outcomes it has recorded (``recorded``, restored with the same checkpoint
        as the output's offsets), so a final claim without a record is a decision whose record a crash lost.

        :raises TransientError: the provider cannot be asked now; the claim stays for the next look.
        """
        if claim.state != "sending":
            return self._record(
                trigger,
                claim.state,
                claim.reason,
                None,
                attempt,
                claim.provider,
                claim.message_id,
                detail="decided before a restart, whose record of it was lost; written again from the ledger",
                recovered=True,
            )
        provider = self.providers.get(claim.provider or "")
        if provider is None or getattr(provider, "idempotent_resend", False):
            return None  # it never reached a provider call, or the provider deduplicates on the trigger id
        try:
            found = provider.find_sent(trigger.trigger_id)
        except NotImplementedError:
            return self._uncertain(trigger, claim, attempt, "crashed_mid_send", "cannot say whether it took it")
        except PermanentError as exc:
            return self._uncertain(trigger, claim, attempt, "lookup_refused", f"refused the lookup ({exc})")
        if found is None:
            self.ledger.update(trigger.trigger_id, Claim("sending", None, None, _now_ms()))
            return None
        now = _now_ms()
        self.ledger.update(trigger.trigger_id, Claim("sent", found.provider, found.message_id, now, "reconciled"))
        self.ledger.record_send(trigger.person_id, now, trigger.trigger_id, self.policy.frequency_window_ms)
        return self._record(
            trigger, "sent", "reconciled", None, attempt, found.provider, found.message_id, detail=found.detail
        )

    def _uncertain(self, trigger: Trigger, claim: Claim, attempt: int, reason: str, problem: str) -> DeliveryRecord:
        """At most once: a send that may have gone out, and no way to ask, is not repeated."""
        self.ledger.update(trigger.trigger_id, Claim("uncertain", claim.provider, None, _now_ms(), reason))
        detail = f"{claim.provider} {problem}; not resent"
        return self._record(trigger, "uncertain", reason, None, attempt, claim.provider, None, detail=detail)

    def _retry_later(
        self,
        trigger: Trigger,
        attempt: int,
        first_seen_ms: int,
        verdict: Verdict | None,
        detail: str,
        retry_after_s: float | None,
        ctx: Any,
        reason: str = "retry_later",
        delay_ms: int | None = None,
    ) -> Iterator[Any]:
        now = _now_ms()
        r = self.cfg.retries
        if now - first_seen_ms > r.give_up_after:
            yield from self._fail(trigger, "gave_up", detail, attempt, verdict, ctx)
            return
        delay = min(r.defer_initial * 2**attempt, r.defer_max) if delay_ms is None else delay_ms
        if retry_after_s is not None:
            delay = max(delay, int(retry_after_s * 1000))
        self._park(trigger, attempt + 1, first_seen_ms, now + delay, ctx)
        yield self._emit(self._record(trigger, "deferred", reason, verdict, attempt, None, None, detail, now + delay))

    def _fail(self, trigger: Trigger, reason: str, detail: str, attempt: int, verdict: Verdict | None, ctx: Any):
        """Failed for good: the record, and the trigger on the dead-letter topic with the reason."""
        if reason in ("bad_profile", "gave_up"):  # no claim was written for these; a restart must find the outcome
            self._note(trigger, Claim("failed", None, None, _now_ms(), reason))
        record = self._record(trigger, "failed", reason, verdict, attempt, None, None, detail=detail)
        yield self._emit(record)
        yield (
            DEAD_LETTER,
            json.dumps(
                {
                    "stage": "email-delivery",
                    "error": reason,
                    "detail": detail,
                    "trigger": dict(trigger.payload),
                    "failed_at_ms": _now_ms(),
                }
            ),
        )

    def _park(self, trigger: Trigger, attempt: int, first_seen_ms: int, not_before_ms: int, ctx: Any) -> None:
        entry = {
            "trigger": json.dumps(dict(trigger.payload)),
            "attempt": attempt,
            "first_seen_ms": first_seen_ms,
            "not_before_ms": not_before_ms,
        }
        self.pending.put(trigger.trigger_id, json.dumps(entry))
        ctx.timer_service().register_processing_time_timer(not_before_ms)

    def _note(self, trigger: Trigger, claim: Claim) -> None:
        """A final outcome in the ledger, where Redis takes it; the record on email.deliveries is written either way."""
        try:
            self.ledger.update(trigger.trigger_id, claim)
        except TransientError as exc:
            log.warning("could not note %s for trigger %s in Redis: %s", claim.state, trigger.trigger_id, exc)

    def _rearm(self, ctx: Any) -> None:
        """Every pending email's timer again (Flink keeps one per time, so this adds none that exist). In process
        mode PyFlink 2.2.1 may restore a checkpoint without some processing-time timers it holds (README,
        "Delivery"); a person's next trigger then brings them back."""
        for raw in self.pending.values():
            ctx.timer_service().register_processing_time_timer(json.loads(raw)["not_before_ms"])

    # records --------------------------------------------------------------------------------------

    def _record(
        self,
        trigger: Trigger,
        status: str,
        reason: str | None,
        verdict: Verdict | None,
        attempt: int,
        provider: str | None,
        message_id: str | None,
        detail: str | None = None,
        send_after_ms: int | None = None,
        recovered: bool = False,
    ) -> DeliveryRecord:
        return DeliveryRecord.for_trigger(
            trigger,
            status=status,
            reason=reason,
            decided_at_ms=_now_ms(),
            variant=verdict.variant if verdict else None,
            holdout=verdict.holdout if verdict else False,
            provider=provider,
            provider_message_id=message_id,
            attempt=attempt,
            detail=detail,
            send_after_ms=send_after_ms,
            recovered=recovered,
        )

    def _emit(self, record: DeliveryRecord) -> str:
        """The record as written, remembered in state when it is the trigger's final outcome."""
        self.counters[record.status].inc()
        if record.is_final:
            self.recorded.put(record.trigger_id, record.status)
        return record.to_json().decode()
