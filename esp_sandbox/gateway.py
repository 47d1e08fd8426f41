"""Request → answer for every provider endpoint: size limit, authentication, the next fault, the contract, keeping.

The order is the one a provider's edge imposes: a body over the limit is refused before anything reads it
(413), then the credentials (401, or Mandrill's 500), then the rate limiter — where injected faults sit, so a
429 or 500 keeps nothing — then the provider validates and accepts. A fault with a 2xx status only delays the
answer; one with ``accepted`` keeps the message and then answers its error (see :mod:`esp_sandbox.faults`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from esp_sandbox import mailchimp, sendgrid, sendgrid_activity, webhook
from esp_sandbox.config import EspSandboxSettings
from esp_sandbox.faults import Fault, FaultQueue
from esp_sandbox.metrics import SandboxMetrics
from esp_sandbox.records import StoredMessage
from esp_sandbox.store import MessageStore
from esp_sandbox.wire import Answer, Incoming, KeySet, parse_json_object

__all__ = ["Gateway"]

Accept = Callable[[Fault | None], tuple[Answer, list[StoredMessage]]]
FaultAnswer = Callable[[Fault], Answer]


class Gateway:
    """The sandbox's provider logic, shared by all requests; HTTP-free, so unit tests call it directly."""

    def __init__(
        self, settings: EspSandboxSettings, store: MessageStore, faults: FaultQueue, metrics: SandboxMetrics
    ) -> None:
        self.store = store
        self.faults = faults
        self.metrics = metrics
        self.delivered_after_ms = settings.delivered_after_ms
        self._sendgrid_keys = KeySet(settings.sendgrid_key_list())
        self._mailchimp_keys = KeySet(settings.mailchimp_key_list())
        self._webhook_secret = settings.webhook_secret.get_secret_value().encode()
        self.ledger = webhook.IdempotencyLedger()
        self.ledger.rebuild(store.select())

    def reset(self) -> int:
        """Forget every kept message and idempotency key; returns how many messages there were."""
        self.ledger.clear()
        return self.store.clear()

    async def sendgrid_send(self, incoming: Incoming) -> Answer:
        if incoming.too_large:
            return self._count("sendgrid", sendgrid.too_large())
        denied = sendgrid.authenticate(incoming, self._sendgrid_keys)
        if denied is not None:
            return self._count("sendgrid", denied)
        return await self._serve(
            "sendgrid",
            lambda _fault: sendgrid.accept(incoming),
            lambda fault: sendgrid.fault_answer(fault, incoming.received_at_ms),
        )

    async def sendgrid_activity(self, incoming: Incoming) -> Answer:
        denied = sendgrid.authenticate(incoming, self._sendgrid_keys)
        if denied is not None:
            return self._count("sendgrid-activity", denied)
        return await self._serve(
            "sendgrid-activity",
            lambda _fault: (sendgrid_activity.search(incoming, self._of("sendgrid"), self.delivered_after_ms), []),
            lambda fault: sendgrid.fault_answer(fault, incoming.received_at_ms),
        )

    async def mailchimp_send(self, incoming: Incoming) -> Answer:
        if incoming.too_large:
            return self._count("mailchimp", mailchimp.too_large())
        doc = parse_json_object(incoming.body)
        denied = mailchimp.authenticate(doc, self._mailchimp_keys)
        if denied is not None or doc is None:
            return self._count("mailchimp", denied or mailchimp.missing_key())
        return await self._serve(
            "mailchimp",
            lambda fault: mailchimp.accept(doc, incoming.received_at_ms, fault.reject_reason if fault else None),
            mailchimp.fault_answer,
        )

    async def mailchimp_search(self, incoming: Incoming) -> Answer:
        doc = parse_json_object(incoming.body)
        denied = mailchimp.authenticate(doc, self._mailchimp_keys)
        if denied is not None or doc is None:
            return self._count("mailchimp-search", denied or mailchimp.missing_key())
        return await self._serve(
            "mailchimp-search",
            lambda _fault: (mailchimp.search(doc, self._of("mailchimp"), incoming.received_at_ms), []),
            mailchimp.fault_answer,
        )

    async def webhook_send(self, incoming: Incoming) -> Answer:
        if incoming.too_large:
            return self._count("webhook", webhook.too_large())
        denied = webhook.authenticate(incoming, self._webhook_secret)
        if denied is not None:
            return self._count("webhook", denied)
        return await self._serve("webhook", lambda _fault: webhook.accept(incoming, self.ledger), webhook.fault_answer)

    def _of(self, provider: str) -> Callable[[], list[StoredMessage]]:
        return lambda: self.store.select(lambda message: message.provider == provider)

    async def _serve(self, endpoint: str, accept: Accept, fault_answer: FaultAnswer) -> Answer:
        fault = self.faults.next(endpoint)
        if fault is None:
            return self._count(endpoint, self._keep(*accept(None)))
        self.metrics.faults.labels(endpoint, str(fault.status)).inc()
        if not fault.is_success and not fault.accepted:
            await asyncio.sleep(fault.delay_ms / 1000)
            return self._count(endpoint, fault_answer(fault))
        answer = self._keep(*accept(fault))
        await asyncio.sleep(fault.delay_ms / 1000)
        return self._count(endpoint, answer if fault.is_success else fault_answer(fault))

    def _keep(self, answer: Answer, records: list[StoredMessage]) -> Answer:
        self.store.add(records)
        for record in records:
            self.metrics.kept.labels(record.provider).inc()
        return answer

    def _count(self, endpoint: str, answer: Answer) -> Answer:
        self.metrics.answers.labels(endpoint, str(answer.status)).inc()
        return answer
