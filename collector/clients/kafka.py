"""The Kafka producer: aiokafka with ``acks=all``, idempotence, lz4 and a short linger.

Why these settings: an HTTP 200 promises the event is durable, so every record waits for all in-sync
replicas (``acks=all``); idempotence stops the producer's own retries from writing a record twice; a few
milliseconds of linger let concurrent requests share one compressed batch.

The collector must start and answer while the broker is away (it then says 503), so connecting is lazy:
:meth:`KafkaEventProducer.start` tries once and does not fail, and :meth:`produce` tries again, at most once
per ``reconnect_backoff_s``. Library errors become :class:`BackendUnavailable` here and nowhere else.

Listeners registered with :meth:`KafkaEventProducer.on_delivered` hear of every record the broker
acknowledged, with the partition it landed on: the heartbeat's event clock learns that way which partitions
are busy and how old the events are, without touching the request path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from collector.clients.base import DeliveryListener, OutgoingRecord
from collector.errors import BackendUnavailable

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_LINGER_MS",
    "DEFAULT_RECONNECT_BACKOFF_S",
    "DEFAULT_REQUEST_TIMEOUT_S",
    "KafkaEventProducer",
]

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_REQUEST_TIMEOUT_S = 10.0
DEFAULT_RECONNECT_BACKOFF_S = 1.0
DEFAULT_LINGER_MS = 5
DEFAULT_CLOSE_TIMEOUT_S = 10.0
_MAX_BATCH_BYTES = 512 * 1024


class KafkaEventProducer:
    """Produces collector records; one instance per process, shared by all requests.

    :param bootstrap_servers: ``host:port[,host:port]``.
    :param compression: ``"lz4"``, ``"gzip"`` or ``"none"``.
    :param request_timeout_s: the broker's time to acknowledge a batch, and the wait for topic metadata.
    :param connect_timeout_s: one attempt to reach the cluster.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        compression: str = "lz4",
        linger_ms: int = DEFAULT_LINGER_MS,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        reconnect_backoff_s: float = DEFAULT_RECONNECT_BACKOFF_S,
        client_id: str = "cartpulse-collector",
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.compression = None if compression == "none" else compression
        self.linger_ms = linger_ms
        self.request_timeout_s = request_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.reconnect_backoff_s = reconnect_backoff_s
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._last_attempt = float("-inf")
        self._last_error = "not connected yet"
        self._listeners: list[DeliveryListener] = []

    def connected(self) -> bool:
        return self._producer is not None

    def on_delivered(self, listener: DeliveryListener) -> None:
        """Call ``listener`` for every record the broker acknowledges from now on; its errors are logged, not raised."""
        self._listeners.append(listener)

    async def partitions(self, topic: str) -> set[int]:
        """The topic's partition ids, from the producer's metadata (refreshed every minute, ``metadata_max_age_ms``).

        :raises BackendUnavailable: the broker cannot be reached, or gave no metadata within the request timeout.
        """
        producer = await self._ensure_started()
        try:
            async with asyncio.timeout(self.request_timeout_s):
                return set(await producer.partitions_for(topic))
        except (KafkaError, TimeoutError) as exc:
            raise _unavailable(exc, topic) from exc

    async def start(self) -> None:
        """Try to connect once; a broker that is down is logged, not raised (requests will get 503)."""
        try:
            await self._ensure_started()
        except BackendUnavailable as exc:
            log.warning("collector starts without Kafka (%s); events get 503 until it is reachable", exc.detail)

    async def produce(self, topic: str, records: Sequence[OutgoingRecord]) -> list[asyncio.Future[None]]:
        producer = await self._ensure_started()
        loop = asyncio.get_running_loop()
        deliveries: list[asyncio.Future[None]] = []
        try:
            # One deadline for the whole hand-over: a send() still waiting (for metadata, or buffer space)
            # when it passes is cancelled, which aiokafka guarantees does not send that record.
            async with asyncio.timeout(self.request_timeout_s):
                for record in records:
                    sent = await producer.send(
                        topic,
                        value=record.value,
                        key=record.key,
                        partition=record.partition,
                        timestamp_ms=record.timestamp_ms,
                    )
                    if self._listeners:
                        sent.add_done_callback(self._notifier(topic, record))
                    deliveries.append(_translated(sent, loop))
        except (KafkaError, TimeoutError) as exc:
            failure = _unavailable(exc, topic)
            log.warning("could not hand %d records to the producer: %s", len(records), failure.detail)
            for _ in range(len(records) - len(deliveries)):
                failed: asyncio.Future[None] = loop.create_future()
                failed.set_exception(failure)
                deliveries.append(failed)
        return deliveries

    def _notifier(self, topic: str, record: OutgoingRecord) -> Callable[[asyncio.Future[object]], None]:
        def notify(sent: asyncio.Future[object]) -> None:
            if sent.cancelled() or sent.exception() is not None:
                return
            partition = getattr(sent.result(), "partition", None)
            if not isinstance(partition, int):
                return
            for listener in self._listeners:
                try:
                    listener(topic, partition, record)
                except Exception:
                    log.exception("a delivery listener failed (the record is delivered all the same)")

        return notify

    async def close(self) -> None:
        """Flush what is buffered (bounded) and disconnect."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=DEFAULT_CLOSE_TIMEOUT_S)
            except (KafkaError, TimeoutError) as exc:
                log.warning("closing the Kafka producer: %s", exc)

    async def _ensure_started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is not None:
                return self._producer
            if time.monotonic() - self._last_attempt < self.reconnect_backoff_s:
                raise BackendUnavailable("kafka", self._last_error)
            self._last_attempt = time.monotonic()
            producer = self._new_producer()
            try:
                await asyncio.wait_for(producer.start(), timeout=self.connect_timeout_s)
            except (KafkaError, OSError, TimeoutError) as exc:
                self._last_error = f"cannot reach {self.bootstrap_servers} ({type(exc).__name__}: {exc})"
                await _quietly_stop(producer)
                raise BackendUnavailable("kafka", self._last_error) from exc
            log.info("connected to Kafka at %s", self.bootstrap_servers)
            self._producer = producer
            return producer

    def _new_producer(self) -> AIOKafkaProducer:
        timeout_ms = int(self.request_timeout_s * 1000)
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            compression_type=self.compression,
            linger_ms=self.linger_ms,
            max_batch_size=_MAX_BATCH_BYTES,
            request_timeout_ms=timeout_ms,
            retry_backoff_ms=200,
            metadata_max_age_ms=60_000,
        )


def _translated(sent: asyncio.Future[object], loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    """A future that resolves with the delivery, its Kafka error turned into BackendUnavailable."""
    result: asyncio.Future[None] = loop.create_future()

    def _done(fut: asyncio.Future[object]) -> None:
        if result.done():
            return
        if fut.cancelled():
            result.set_exception(BackendUnavailable("kafka", "delivery was cancelled"))
        elif (exc := fut.exception()) is not None:
            result.set_exception(_unavailable(exc, ""))
        else:
            result.set_result(None)

    sent.add_done_callback(_done)
    return result


def _unavailable(exc: BaseException, topic: str) -> BackendUnavailable:
    if isinstance(exc, TimeoutError) and topic:
        detail = f"no answer within the timeout for topic {topic!r} (is the broker up and does the topic exist?)"
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return BackendUnavailable("kafka", detail)


async def _quietly_stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout=DEFAULT_CONNECT_TIMEOUT_S)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.debug("stopping a producer that never connected: %s", exc)
