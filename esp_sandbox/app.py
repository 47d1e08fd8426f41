"""Wiring: the Starlette app with the provider routes, the control API, the outbox pages, health and metrics.

==========================================  =========================================================================
``POST /v3/mail/send``                      SendGrid Mail Send (:mod:`esp_sandbox.sendgrid`)
``GET /v3/messages``                        SendGrid Email Activity (:mod:`esp_sandbox.sendgrid_activity`)
``POST /api/1.0/messages/send[.json]``      Mailchimp Transactional send (:mod:`esp_sandbox.mailchimp`)
``POST /api/1.0/messages/search[.json]``    Mailchimp Transactional search
``POST /webhook/email``                     the signed, idempotent webhook (:mod:`esp_sandbox.webhook`)
``POST|GET|DELETE /_sandbox/faults``        queue, list, clear injected answers (:mod:`esp_sandbox.faults`)
``GET|DELETE /_sandbox/messages``           kept messages as JSON (``?provider=&trigger_id=&to=``) / forget them
``GET /_sandbox/messages/{id}``             one kept message as JSON
``GET /``, ``/outbox``, ``/outbox/{id}``    the outbox pages (:mod:`esp_sandbox.outbox`)
``GET /health``, ``GET /metrics``           liveness with counts, Prometheus text
==========================================  =========================================================================
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from esp_sandbox import mailchimp, sendgrid, webhook
from esp_sandbox.config import EspSandboxSettings, load_settings
from esp_sandbox.faults import FaultQueue, FaultSpecError, parse_faults
from esp_sandbox.gateway import Gateway
from esp_sandbox.metrics import SandboxMetrics
from esp_sandbox.outbox import PAGE_HEADERS, OutboxRenderer, list_view, message_view
from esp_sandbox.records import PROVIDERS
from esp_sandbox.smtp import SmtpServer
from esp_sandbox.store import MessageStore
from esp_sandbox.wire import Answer, Incoming

__all__ = ["CONTROL_MAX_BYTES", "create_app"]

log = logging.getLogger(__name__)

#: Bodies of the lookups and the control API; they are small JSON documents.
CONTROL_MAX_BYTES = 1024 * 1024
#: Past its limit a body is read on (and dropped) up to this many times the limit, so the client reads the 413
#: instead of a reset connection; beyond that the sandbox stops reading.
_DRAIN_FACTOR = 4

Clock = Callable[[], int]
Handler = Callable[[Incoming], Awaitable[Answer]]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def create_app(
    settings: EspSandboxSettings | None = None,
    *,
    store: MessageStore | None = None,
    faults: FaultQueue | None = None,
    metrics: SandboxMetrics | None = None,
    smtp: SmtpServer | None = None,
    clock: Clock = _now_ms,
) -> Starlette:
    """Build the app; a ``store`` not passed in is the configured JSONL file, loaded now.

    ``smtp``, when given, is started and stopped with the app (``python -m esp_sandbox`` passes it).
    """
    settings = settings or load_settings()
    if store is None:
        store = MessageStore(settings.store_path)
        store.load()
    faults = faults or FaultQueue()
    metrics = metrics or SandboxMetrics()
    gateway = Gateway(settings, store, faults, metrics)
    renderer = OutboxRenderer()

    def provider_route(handler: Handler, limit: int) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            incoming = await _read(request, limit, clock())
            return _response(await handler(incoming))

        return endpoint

    async def push_faults(request: Request) -> Response:
        incoming = await _read(request, CONTROL_MAX_BYTES, clock())
        try:
            endpoint, queued = parse_faults(_json_or_none(incoming.body))
            pending = faults.push(endpoint, queued)
        except FaultSpecError as exc:
            return JSONResponse({"error": "invalid_fault", "field": exc.field or None, "message": exc.reason}, 400)
        log.info("queued %d fault(s) for %s: %s", len(queued), endpoint, [f.status for f in queued])
        return JSONResponse({"provider": endpoint, "queued": len(queued), "pending": pending})

    async def list_faults(_: Request) -> Response:
        return JSONResponse(faults.pending())

    async def clear_faults(request: Request) -> Response:
        endpoint = request.query_params.get("provider") or None
        if endpoint is not None and endpoint not in faults.pending():
            return JSONResponse({"error": "invalid_fault", "field": "provider", "message": "unknown provider"}, 400)
        return JSONResponse({"cleared": faults.clear(endpoint)})

    async def list_messages(request: Request) -> Response:
        provider = request.query_params.get("provider") or None
        trigger_id = request.query_params.get("trigger_id") or None
        to = (request.query_params.get("to") or "").lower() or None
        if provider is not None and provider not in PROVIDERS:
            return JSONResponse({"error": "invalid_filter", "field": "provider", "message": f"one of {PROVIDERS}"}, 400)
        found = store.select(
            lambda m: (
                (provider is None or m.provider == provider)
                and (trigger_id is None or m.trigger_id == trigger_id)
                and (to is None or to in (address.lower() for address in [*m.to, *m.cc, *m.bcc]))
            )
        )
        return JSONResponse([message.to_json() for message in found])

    async def one_message(request: Request) -> Response:
        message = store.get(request.path_params["id"])
        if message is None:
            return JSONResponse({"error": "not_found", "message": "no kept message has this id"}, 404)
        return JSONResponse(message.to_json())

    async def reset_messages(_: Request) -> Response:
        deleted = gateway.reset()
        log.info("forgot %d kept message(s)", deleted)
        return JSONResponse({"deleted": deleted})

    async def outbox_page(request: Request) -> Response:
        provider = request.query_params.get("provider") or None
        view = list_view(store.select(), provider if provider in PROVIDERS else None)
        return HTMLResponse(renderer.render("outbox.html", view=view), headers=PAGE_HEADERS)

    async def message_page(request: Request) -> Response:
        message = store.get(request.path_params["id"])
        if message is None:
            return HTMLResponse("<!doctype html><title>Not found</title><p>No kept message has this id.</p>", 404)
        return HTMLResponse(renderer.render("message.html", view=message_view(message)), headers=PAGE_HEADERS)

    async def home(_: Request) -> Response:
        return RedirectResponse("/outbox")

    async def health(_: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "messages": len(store), "smtp": smtp.address if smtp is not None else None}
        )

    async def metrics_page(_: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if smtp is not None:
            await anyio.to_thread.run_sync(smtp.start)
        log.info(
            "ESP sandbox ready: %d kept message(s) in %s; outbox at http://%s:%d/outbox",
            len(store),
            store.path,
            settings.host,
            settings.port,
        )
        try:
            yield
        finally:
            if smtp is not None:
                await anyio.to_thread.run_sync(smtp.stop)

    mailchimp_send = provider_route(gateway.mailchimp_send, mailchimp.MAX_BODY_BYTES)
    mailchimp_search = provider_route(gateway.mailchimp_search, CONTROL_MAX_BYTES)
    routes = [
        Route("/v3/mail/send", provider_route(gateway.sendgrid_send, sendgrid.MAX_BODY_BYTES), methods=["POST"]),
        Route("/v3/messages", provider_route(gateway.sendgrid_activity, CONTROL_MAX_BYTES), methods=["GET"]),
        Route("/api/1.0/messages/send", mailchimp_send, methods=["POST"]),
        Route("/api/1.0/messages/send.json", mailchimp_send, methods=["POST"]),
        Route("/api/1.0/messages/search", mailchimp_search, methods=["POST"]),
        Route("/api/1.0/messages/search.json", mailchimp_search, methods=["POST"]),
        Route("/webhook/email", provider_route(gateway.webhook_send, webhook.MAX_BODY_BYTES), methods=["POST"]),
        Route("/_sandbox/faults", push_faults, methods=["POST"]),
        Route("/_sandbox/faults", list_faults, methods=["GET"]),
        Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
        Route("/_sandbox/messages", list_messages, methods=["GET"]),
        Route("/_sandbox/messages", reset_messages, methods=["DELETE"]),
        Route("/_sandbox/messages/{id}", one_message, methods=["GET"]),
        Route("/", home, methods=["GET"]),
        Route("/outbox", outbox_page, methods=["GET"]),
        Route("/outbox/{id}", message_page, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    app.state.store = store
    app.state.faults = faults
    app.state.metrics = metrics
    return app


async def _read(request: Request, limit: int, received_at_ms: int) -> Incoming:
    """The request within ``limit`` bytes; past it, ``too_large`` (and the rest is drained, then dropped)."""
    data = bytearray()
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if len(data) <= limit:
            data += chunk[: limit + 1 - len(data)]
        if seen > limit * _DRAIN_FACTOR:
            break
    return Incoming(
        headers={name.lower(): value for name, value in request.headers.items()},
        body=bytes(data[:limit]) if seen > limit else bytes(data),
        received_at_ms=received_at_ms,
        query=dict(request.query_params),
        too_large=seen > limit,
    )


def _response(answer: Answer) -> Response:
    return Response(answer.body, answer.status, headers=dict(answer.headers), media_type=answer.media_type)


def _json_or_none(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None
