"""Wiring: the Starlette app with Segment's routes, health, metrics, the browser snippet and the demo shop.

=====================================  ===================================================================
``POST /v1/{track,identify,page,``     Segment's HTTP Tracking API (and the one-letter forms analytics.js
``screen,alias,group,batch,import}``   posts to: ``/v1/t``, ``/v1/i``, ``/v1/p``, ``/v1/s``, ``/v1/a``,
                                       ``/v1/g``, ``/v1/b``)
``GET /health``                        200 while the process runs, with Kafka and Redis reachability
``GET /metrics``                       Prometheus text format
``GET /cartpulse.js``                  the browser tracker
``GET /shop/``                         the demo shop that uses it
``GET|POST /unsubscribe?token=``       the signed unsubscribe link of every email (collector/unsubscribe.py)
=====================================  ===================================================================

Browsers post from the shop's origin, so the ``/v1`` routes answer CORS (``COLLECTOR_CORS_ORIGINS``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from collector.auth import WriteKeys
from collector.body import BodyError, read_body
from collector.clients.base import EventProducer, StateStore
from collector.clients.kafka import KafkaEventProducer
from collector.clients.redis import RedisStore
from collector.config import CollectorSettings, load_settings
from collector.errors import Reason
from collector.handlers import Collector, HandlerOptions
from collector.heartbeat import Heartbeats
from collector.metrics import CollectorMetrics
from collector.unsubscribe import UnsubscribePages
from collector.wire import CALLS, IngestRequest
from connectors.delivery_ledger import DeliveryLedger

__all__ = ["STATIC_DIR", "create_app"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

Clock = Callable[[], int]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def create_app(
    settings: CollectorSettings | None = None,
    *,
    producer: EventProducer | None = None,
    store: StateStore | None = None,
    metrics: CollectorMetrics | None = None,
    clock: Clock = _now_ms,
) -> Starlette:
    """Build the app; clients not passed in are the real ones, made from ``settings`` (default: the environment).

    Usable as a uvicorn factory: ``uvicorn --factory collector.app:create_app``.
    """
    settings = settings or load_settings()
    metrics = metrics or CollectorMetrics()
    producer = producer or KafkaEventProducer(
        settings.kafka_bootstrap_servers,
        compression=settings.kafka_compression,
        linger_ms=settings.kafka_linger_ms,
        request_timeout_s=settings.produce_timeout_ms / 1000,
        connect_timeout_s=settings.kafka_connect_timeout_ms / 1000,
    )
    state: StateStore = store or RedisStore(
        settings.redis_url.get_secret_value(), timeout_s=settings.redis_timeout_ms / 1000
    )
    collector = Collector(
        HandlerOptions.from_settings(settings),
        WriteKeys(settings.write_key_list()),
        producer,
        state,
        state,
        metrics,
    )
    # Watermark heartbeats to idle partitions of the events topic (collector/heartbeat.py); None when off.
    heartbeats = Heartbeats.from_settings(settings, producer, state, metrics)

    async def ingest(request: Request) -> Response:
        call = CALLS.get(request.path_params["call"])
        if call is None:
            known = ", ".join(f"/v1/{name}" for name in CALLS)
            return JSONResponse({"success": False, "code": "not_found", "message": f"use one of {known}"}, 404)
        received_at_ms = clock()
        try:
            body = await read_body(
                request.stream(), request.headers.get("content-encoding"), collector.body_limit(call)
            )
        except BodyError as exc:
            metrics.rejected.labels(Reason.MALFORMED_JSON).inc()
            return JSONResponse({"success": False, "code": "invalid_request", "message": str(exc)}, exc.status)
        answer = await collector.handle(
            IngestRequest(
                call=call,
                body=body.data,
                authorization=request.headers.get("authorization"),
                received_at_ms=received_at_ms,
                too_large=body.too_large,
            )
        )
        return JSONResponse(answer.body, answer.status, headers=answer.headers)

    async def health(_: Request) -> Response:
        redis_ok = await state.ping()
        return JSONResponse(
            {
                "status": "ok",
                "kafka": "connected" if producer.connected() else "not connected",
                "redis": "ok" if redis_ok else "unreachable",
            }
        )

    async def metrics_page(_: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def snippet(_: Request) -> Response:
        return FileResponse(STATIC_DIR / "cartpulse.js", media_type="text/javascript")

    async def home(_: Request) -> Response:
        return RedirectResponse("/shop/")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await producer.start()
        if not await state.ping():
            log.warning("collector starts without Redis; events get 503 until it is reachable")
        log.info("collector ready: events to %r, dead letters to %r", settings.events_topic, settings.dlq_topic)
        if heartbeats is not None:
            heartbeats.start()
        try:
            yield
        finally:
            if heartbeats is not None:
                await heartbeats.stop()
            await collector.drain()
            await producer.close()
            await state.close()

    ledger = DeliveryLedger(settings.redis_url.get_secret_value(), settings.ledger_prefix)
    secret = settings.unsubscribe_secret.get_secret_value().encode() if settings.unsubscribe_secret else None
    unsubscribe = UnsubscribePages(secret, settings.unsubscribe_max_age_ms // 1000, ledger)

    routes = [
        Route("/v1/{call}", ingest, methods=["POST"]),
        Route("/unsubscribe", unsubscribe.confirm, methods=["GET"]),
        Route("/unsubscribe", unsubscribe.unsubscribe, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/cartpulse.js", snippet, methods=["GET"]),
        Route("/", home, methods=["GET"]),
        Mount("/shop", StaticFiles(directory=STATIC_DIR / "shop", html=True), name="shop"),
    ]
    cors = Middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list(),
        allow_methods=["POST", "GET"],
        allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
        max_age=86_400,
    )
    app = Starlette(routes=routes, middleware=[cors], lifespan=lifespan)
    app.state.collector = collector
    app.state.metrics = metrics
    app.state.heartbeats = heartbeats
    return app
