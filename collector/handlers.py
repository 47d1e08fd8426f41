"""Request → response: authenticate, check, deduplicate, resolve identity, produce, answer.

Pure of HTTP: :class:`Collector` takes an :class:`IngestRequest` (the body already read, within its size
limit) and returns an :class:`IngestResponse`; the Kafka and Redis clients are injected, so unit tests run it
against in-memory twins and :mod:`collector.app` against the real ones.

The promise behind a 200: every event of the request is on ``clickstream.events``, acknowledged by all
in-sync replicas, or was already there (a duplicate). Anything short of that is a 503 with ``Retry-After``;
the client resends the whole request and the deduplication makes that safe. Answers, in order of precedence:

=====  =================================================================================================
401    no write key, or an unknown one
413    the body is over the limit (32 KB for a single call, 500 KB for a batch)
503    Kafka or Redis could not take it (nothing unacknowledged is reported as accepted)
400    the body is not a JSON object, or some events are unusable (in a batch the valid ones are accepted;
       ``errors`` lists the others one by one, with index, messageId, field and reason)
200    ``{"success": true}``, as Segment answers
=====  =================================================================================================

E-commerce properties that deviate from Segment's spec do not make an event unusable: Segment accepts it, and
its SDKs would not resend a refused one. It is produced with the deviations marked (:mod:`collector.schema`) and
counted in ``cartpulse_collector_ecommerce_deviations_total`` once the broker has it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collector.auth import WriteKeys, basic_auth_user
from collector.clients.base import ClaimState, DedupStore, EventProducer, IdentityStore, OutgoingRecord
from collector.config import CollectorSettings
from collector.errors import BackendUnavailable, Reason, Rejected
from collector.metrics import CollectorMetrics
from collector.schema import CollectedEvent, normalize
from collector.timestamps import TimeBounds
from collector.wire import (
    IngestRequest,
    IngestResponse,
    body_write_key,
    error_entry,
    invalid,
    parse_body,
    split_calls,
)
from udfs.events import dead_letter_record

__all__ = ["Collector", "HandlerOptions"]

log = logging.getLogger(__name__)

_DLQ_PAYLOAD_CHARS = 32 * 1024
_DLQ_TIMEOUT_S = 5.0
#: ``json.dumps(x, separators=(",", ":"))`` builds a new encoder on every call (~1 us); one shared encoder with
#: the same settings writes the same bytes, and runs twice per event (size check, record).
_COMPACT = json.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class HandlerOptions:
    """The settings the logic uses, in its units; see :mod:`collector.config` for each one's meaning."""

    events_topic: str = "clickstream.events"
    dlq_topic: str = "clickstream.dlq"
    dedup_window_ms: int = 86_400_000
    pending_ttl_ms: int = 600_000
    identity_ttl_ms: int = 365 * 86_400_000
    produce_timeout_s: float = 10.0
    retry_after_s: float = 5.0
    bounds: TimeBounds = TimeBounds()
    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024

    @classmethod
    def from_settings(cls, s: CollectorSettings) -> HandlerOptions:
        return cls(
            events_topic=s.events_topic,
            dlq_topic=s.dlq_topic,
            dedup_window_ms=s.dedup_window_ms,
            pending_ttl_ms=s.dedup_pending_ttl_ms,
            identity_ttl_ms=s.identity_ttl_ms,
            produce_timeout_s=s.produce_timeout_ms / 1000,
            retry_after_s=s.retry_after_ms / 1000,
            bounds=TimeBounds(max_future_ms=s.max_future_ms, max_age_ms=s.max_age_ms),
            max_event_bytes=s.max_event_bytes,
            max_batch_bytes=s.max_batch_bytes,
        )


@dataclass
class _Outcome:
    accepted: int = 0
    duplicates: int = 0
    unavailable: BackendUnavailable | None = None


class Collector:
    """The collector's logic; one instance per process, shared by all requests (it keeps no per-request state)."""

    def __init__(
        self,
        options: HandlerOptions,
        write_keys: WriteKeys,
        producer: EventProducer,
        dedup: DedupStore,
        identity: IdentityStore,
        metrics: CollectorMetrics,
    ) -> None:
        self.options = options
        self.write_keys = write_keys
        self.producer = producer
        self.dedup = dedup
        self.identity = identity
        self.metrics = metrics
        self._settling: set[asyncio.Task[None]] = set()

    def body_limit(self, call: str) -> int:
        """The most bytes a body of this call may have (Segment: 32 KB a call, 500 KB a batch)."""
        return self.options.max_batch_bytes if call == "batch" else self.options.max_event_bytes

    async def handle(self, request: IngestRequest) -> IngestResponse:
        header_key = basic_auth_user(request.authorization)
        if header_key is not None and not self.write_keys.accepts(header_key):
            return self._unauthorized("the write key in the Authorization header is not known")
        authenticated = header_key is not None
        if request.too_large:
            limit = self.body_limit(request.call)
            error = Rejected(Reason.TOO_LARGE, "", f"the body is over {limit} bytes, the limit for a {request.call}")
            if authenticated:
                await self._dead_letter([(error, _payload_text(request.body) + " [truncated]")])
            self.metrics.rejected.labels(Reason.TOO_LARGE).inc()
            return invalid(413, str(error), [error_entry(0, None, error)], accepted=0)
        try:
            doc = parse_body(request.body)
        except Rejected as error:
            if authenticated:
                await self._dead_letter([(error, _payload_text(request.body))])
            self.metrics.rejected.labels(error.code).inc()
            return invalid(400, str(error), [error_entry(0, None, error)], accepted=0)
        if not authenticated and not self.write_keys.accepts(body_write_key(doc)):
            missing = "writeKey" not in doc
            return self._unauthorized(
                "no write key: send it as the HTTP Basic user (empty password) or as writeKey in the body"
                if missing
                else "the writeKey in the body is not known"
            )
        return await self._ingest(request, doc)

    async def drain(self) -> None:
        """Wait for deliveries that outlived their request to settle their claims (on shutdown)."""
        if self._settling:
            await asyncio.wait(self._settling, timeout=self.options.produce_timeout_s)

    async def _ingest(self, request: IngestRequest, doc: dict[str, Any]) -> IngestResponse:
        try:
            items, sent_at, context = split_calls(doc, request.call)
        except Rejected as error:
            await self._dead_letter([(error, _payload_text(request.body))])
            self.metrics.rejected.labels(error.code).inc()
            return invalid(400, str(error), [error_entry(0, None, error)], accepted=0)
        events: list[CollectedEvent] = []
        rejected: list[tuple[int, Any, Rejected]] = []
        for index, item in enumerate(items):
            try:
                if request.call == "batch":
                    self._check_event_size(item)
                events.append(
                    normalize(
                        item,
                        index=index,
                        call_type=None if request.call == "batch" else request.call,
                        received_at_ms=request.received_at_ms,
                        bounds=self.options.bounds,
                        batch_sent_at=sent_at,
                        batch_context=context,
                    )
                )
            except Rejected as refused:
                rejected.append((index, item, refused))
        for _, _, why in rejected:
            self.metrics.rejected.labels(why.code).inc()
        dead_letters = [(why, _json_text(item)) for _, item, why in rejected]
        if dead_letters:
            outcome, _ = await asyncio.gather(self._deliver(events), self._dead_letter(dead_letters))
        else:
            outcome = await self._deliver(events)
        if outcome.unavailable is not None:
            return self._retry_later(outcome.unavailable)
        if rejected:
            entries = [error_entry(index, item, error) for index, item, error in rejected]
            if request.call != "batch":
                return invalid(400, str(rejected[0][2]), entries, accepted=0)
            message = f"{len(rejected)} of {len(items)} events were rejected (see errors); {len(events)} were accepted"
            return invalid(400, message, entries, accepted=len(events))
        return IngestResponse(200, {"success": True})

    def _check_event_size(self, item: Any) -> None:
        size = len(_COMPACT.encode(item).encode("utf-8", errors="surrogatepass"))
        if size > self.options.max_event_bytes:
            raise Rejected(
                Reason.TOO_LARGE, "", f"the event is {size} bytes; at most {self.options.max_event_bytes} per event"
            )

    async def _deliver(self, events: Sequence[CollectedEvent]) -> _Outcome:
        outcome = _Outcome()
        unique: list[CollectedEvent] = []
        seen: set[str] = set()
        for event in events:
            if event.client_message_id and event.message_id in seen:
                outcome.duplicates += 1
                continue
            seen.add(event.message_id)
            unique.append(event)
        token = uuid.uuid4().hex
        claimable = [event for event in unique if event.client_message_id]
        try:
            states = await self.dedup.claim([e.message_id for e in claimable], token, self.options.pending_ttl_ms)
        except BackendUnavailable as exc:
            outcome.unavailable = exc
            return outcome
        state_of = {event.message_id: state for event, state in zip(claimable, states, strict=True)}
        to_send = [e for e in unique if not e.client_message_id or state_of[e.message_id] is ClaimState.NEW]
        claimed = [e.message_id for e in to_send if e.client_message_id]
        outcome.duplicates += sum(1 for state in states if state is ClaimState.DONE)
        in_flight = sum(1 for state in states if state is ClaimState.PENDING)
        if outcome.duplicates:
            self.metrics.deduplicated.inc(outcome.duplicates)
        try:
            records = await self._records(to_send)
            deliveries = await self.producer.produce(self.options.events_topic, records) if records else []
        except BackendUnavailable as exc:
            await self._release(claimed, token)
            outcome.unavailable = exc
            return outcome
        outcome.unavailable = await self._await_deliveries(to_send, deliveries, token, outcome)
        if outcome.unavailable is None and in_flight:
            detail = f"{in_flight} events of this request are still being delivered by an earlier attempt"
            outcome.unavailable = BackendUnavailable("in_flight", detail, message=detail)
        return outcome

    async def _records(self, events: Sequence[CollectedEvent]) -> list[OutgoingRecord]:
        """Record identity links, resolve each event's person, and encode the records."""
        links = [event.link for event in events if event.link is not None]
        await self.identity.link(links, self.options.identity_ttl_ms)
        linked = dict(links)
        anonymous = [e.anonymous_id for e in events if e.user_id is None and e.anonymous_id not in linked]
        resolved = {**(await self.identity.resolve([a for a in anonymous if a is not None])), **linked}
        records = []
        for event in events:
            person = event.user_id or resolved.get(event.anonymous_id or "") or event.anonymous_id or ""
            value = _COMPACT.encode({**event.doc, "personId": person}).encode("ascii")
            key = person.encode("utf-8", errors="surrogatepass")
            records.append(
                OutgoingRecord(
                    key,
                    value,
                    timestamp_ms=_record_timestamp(event),
                    event_time_ms=event.event_time_ms,
                    received_at_ms=event.received_at_ms,
                )
            )
        return records

    async def _await_deliveries(
        self,
        events: Sequence[CollectedEvent],
        deliveries: Sequence[asyncio.Future[None]],
        token: str,
        outcome: _Outcome,
    ) -> BackendUnavailable | None:
        """Wait up to the produce timeout; settle the claims of what finished, and later of what did not."""
        if not deliveries:
            return None
        started = time.perf_counter()
        done, _ = await asyncio.wait(deliveries, timeout=self.options.produce_timeout_s)
        acked: list[CollectedEvent] = []
        failed: list[CollectedEvent] = []
        failure: BackendUnavailable | None = None
        for event, delivery in zip(events, deliveries, strict=True):
            if delivery not in done:
                failure = failure or BackendUnavailable("kafka", "the broker did not acknowledge in time")
                self._settle_later(event, delivery, token)
            elif (exc := delivery.exception()) is not None:
                failure = failure or _as_unavailable(exc)
                failed.append(event)
            else:
                acked.append(event)
        if failure is None:
            self.metrics.produce_latency.observe(time.perf_counter() - started)
        self._count_accepted(acked)
        outcome.accepted += len(acked)
        await self._commit([e.message_id for e in acked if e.client_message_id])
        await self._release([e.message_id for e in failed if e.client_message_id], token)
        return failure

    def _settle_later(self, event: CollectedEvent, delivery: asyncio.Future[None], token: str) -> None:
        """The request gave up waiting, but the record may still land: keep the claim until we know."""

        async def settle() -> None:
            try:
                await delivery
            except BackendUnavailable:
                if event.client_message_id:
                    await self._release([event.message_id], token)
                return
            self._count_accepted([event])
            if event.client_message_id:
                await self._commit([event.message_id])

        task = asyncio.get_running_loop().create_task(settle())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    def _count_accepted(self, events: Sequence[CollectedEvent]) -> None:
        """Counted once the broker has them, so an event resent after a 503 counts once, like its record.

        Each label set is looked up once per request: a batch of 200 track calls is one ``inc(200)``.
        """
        types = Counter(event.type for event in events)
        deviations: Counter[tuple[str, str, str]] = Counter()
        for event in events:
            if event.deviations:
                name = event.doc["event"]
                deviations.update(
                    (name, field, reason) for field, reason in {(d.metric_field, d.reason) for d in event.deviations}
                )
        for kind, n in types.items():
            self.metrics.accepted.labels(kind).inc(n)
        for (name, field, reason), n in sorted(deviations.items()):
            self.metrics.ecommerce_deviations.labels(name, field, reason).inc(n)

    async def _commit(self, message_ids: list[str]) -> None:
        try:
            await self.dedup.commit(message_ids, self.options.dedup_window_ms)
        except BackendUnavailable as exc:
            # The events are on Kafka, so the answer stays 200; a retry within the pending TTL gets 503.
            log.warning("produced %d events but could not mark them as produced: %s", len(message_ids), exc)

    async def _release(self, message_ids: list[str], token: str) -> None:
        try:
            await self.dedup.release(message_ids, token)
        except BackendUnavailable as exc:
            log.warning("could not release %d claims (they expire with the pending TTL): %s", len(message_ids), exc)

    async def _dead_letter(self, rejected: Sequence[tuple[Rejected, str]]) -> None:
        """Best effort: a dead-letter topic that is down is logged and counted, and never changes the answer."""
        if not rejected:
            return
        records = [OutgoingRecord(key=None, value=_dead_letter_value(error, payload)) for error, payload in rejected]
        try:
            deliveries = await self.producer.produce(self.options.dlq_topic, records)
            done, pending = await asyncio.wait(deliveries, timeout=_DLQ_TIMEOUT_S)
            lost = len(pending) + sum(1 for d in done if d.exception() is not None)
        except BackendUnavailable as exc:
            log.warning("dead-letter topic unavailable: %s", exc)
            lost = len(records)
        if lost:
            self.metrics.dead_letter_failures.inc(lost)

    def _retry_later(self, exc: BackendUnavailable) -> IngestResponse:
        self.metrics.unavailable.labels(exc.backend).inc()
        retry_after = max(1, math.ceil(self.options.retry_after_s))
        log.warning("answering 503: %s", exc)
        return IngestResponse(
            503,
            {"success": False, "code": "unavailable", "message": f"{exc}; nothing was lost: retry the same request"},
            {"Retry-After": str(retry_after)},
        )

    def _unauthorized(self, message: str) -> IngestResponse:
        self.metrics.rejected.labels(Reason.UNAUTHORIZED).inc()
        return IngestResponse(
            401,
            {"success": False, "code": "unauthorized", "message": message},
            {"WWW-Authenticate": 'Basic realm="cartpulse collector"'},
        )


def _dead_letter_value(error: Rejected, payload: str) -> bytes:
    record = json.loads(dead_letter_record(payload, error, stage="collector"))
    record["reason"] = str(error.code)
    return json.dumps(record, separators=(",", ":")).encode("ascii")


def _json_text(item: Any) -> str:
    text = json.dumps(item, separators=(",", ":"))
    return text if len(text) <= _DLQ_PAYLOAD_CHARS else text[:_DLQ_PAYLOAD_CHARS] + " [truncated]"


def _payload_text(body: bytes) -> str:
    return body[:_DLQ_PAYLOAD_CHARS].decode("utf-8", errors="replace")


def _as_unavailable(exc: BaseException) -> BackendUnavailable:
    return exc if isinstance(exc, BackendUnavailable) else BackendUnavailable("kafka", f"{type(exc).__name__}: {exc}")


def _record_timestamp(event: CollectedEvent) -> int | None:
    """The Kafka record's timestamp: the event time, from which the jobs' Kafka source makes watermarks; never
    later than the event's arrival (a broker refuses timestamps far ahead of its clock). None: the producer's."""
    if event.event_time_ms is None:
        return None
    if event.received_at_ms is None:
        return event.event_time_ms
    return min(event.event_time_ms, event.received_at_ms)
