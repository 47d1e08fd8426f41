"""The SMTP door: an aiosmtpd server in the sandbox's process, with STARTTLS and AUTH, keeping every message.

As a provider's SMTP relay does, it offers STARTTLS (a certificate made at start, :mod:`esp_sandbox.tls`) and
takes mail only from an authenticated client: AUTH PLAIN or LOGIN with the configured user and password, and
only after STARTTLS (aiosmtpd refuses AUTH in clear text). Without AUTH, ``MAIL FROM`` gets ``530``.

Each DATA is parsed (:mod:`esp_sandbox.mime`) and kept; the reply is ``250 2.0.0 Ok: queued as <id>``, the id of
the kept message. Faults for ``smtp`` reply with their code instead (``451``, ``550``, ...), after ``delay_ms``.

aiosmtpd's :class:`~aiosmtpd.controller.Controller` serves on its own thread and event loop, so the store and
the fault queue it shares with the HTTP side are thread-safe.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from esp_sandbox.faults import FaultQueue
from esp_sandbox.metrics import SandboxMetrics
from esp_sandbox.mime import parse_message
from esp_sandbox.store import MessageStore

__all__ = ["MAX_MESSAGE_BYTES", "Credentials", "OutboxHandler", "SmtpServer", "ensure_port_free"]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 30 * 1024 * 1024
_READY_TIMEOUT_S = 10.0
_IDLE_TIMEOUT_S = 300.0

Clock = Callable[[], int]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Credentials:
    """The one accepted login; an aiosmtpd ``authenticator`` comparing in constant time."""

    def __init__(self, user: str, password: str) -> None:
        self._user = user.encode()
        self._password = password.encode()

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user_ok = hmac.compare_digest(auth_data.login, self._user)
        password_ok = hmac.compare_digest(auth_data.password, self._password)
        if not (user_ok and password_ok):
            log.info("SMTP AUTH %s refused for %r", mechanism, auth_data.login)
        return AuthResult(success=user_ok and password_ok, handled=False)


class OutboxHandler:
    """aiosmtpd handler: keeps each message, or answers the next ``smtp`` fault."""

    def __init__(
        self, store: MessageStore, faults: FaultQueue, metrics: SandboxMetrics, clock: Clock = _now_ms
    ) -> None:
        self.store = store
        self.faults = faults
        self.metrics = metrics
        self.clock = clock

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        fault = self.faults.next("smtp")
        if fault is not None:
            self.metrics.faults.labels("smtp", str(fault.status)).inc()
            if not fault.is_success and not fault.accepted:
                await asyncio.sleep(fault.delay_ms / 1000)
                return self._reply(_fault_reply(fault.status))
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="surrogateescape")
        record = parse_message(raw, str(envelope.mail_from or ""), list(envelope.rcpt_tos), self.clock())
        self.store.add([record])
        self.metrics.kept.labels("smtp").inc()
        log.info("kept SMTP message %s to %s: %r", record.id, ", ".join(envelope.rcpt_tos), record.subject)
        if fault is not None:
            await asyncio.sleep(fault.delay_ms / 1000)
            if not fault.is_success:
                return self._reply(_fault_reply(fault.status))
        return self._reply(f"250 2.0.0 Ok: queued as {record.provider_message_id}")

    def _reply(self, line: str) -> str:
        self.metrics.answers.labels("smtp", line[:3]).inc()
        return line


def _fault_reply(status: int) -> str:
    if 400 <= status < 500:
        return f"{status} 4.3.0 Temporary failure (sandbox fault), try again later"
    if status >= 500:
        return f"{status} 5.3.0 Permanent failure (sandbox fault)"
    return f"{status} 2.0.0 Ok"


def ensure_port_free(host: str, port: int) -> None:
    """Raise ``RuntimeError`` (one sentence) if the SMTP port cannot be bound as asyncio binds it (SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise RuntimeError(_busy(host, port, exc)) from exc


def _busy(host: str, port: int, exc: OSError) -> str:
    return (
        f"the SMTP server cannot listen on {host}:{port} ({exc.strerror or exc}); stop the program using that port "
        "or set ESP_SMTP_PORT to a free one"
    )


class SmtpServer:
    """Start and stop the SMTP server; ``start`` raises one clear sentence when the port is taken."""

    def __init__(
        self,
        handler: OutboxHandler,
        host: str,
        port: int,
        tls_context: ssl.SSLContext,
        credentials: Credentials,
    ) -> None:
        self.host = host
        self.port = port
        self._controller = Controller(
            handler,
            hostname=host,
            port=port,
            ready_timeout=_READY_TIMEOUT_S,
            server_hostname="localhost",
            ident="cartpulse ESP sandbox",
            tls_context=tls_context,
            require_starttls=False,
            authenticator=credentials,
            auth_required=True,
            auth_require_tls=True,
            data_size_limit=MAX_MESSAGE_BYTES,
            timeout=_IDLE_TIMEOUT_S,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        ensure_port_free(self.host, self.port)  # aiosmtpd would only say so after its ready timeout
        try:
            self._controller.start()
        except OSError as exc:
            raise RuntimeError(_busy(self.host, self.port, exc)) from exc
        log.info("SMTP on %s (STARTTLS, then AUTH PLAIN/LOGIN)", self.address)

    def stop(self) -> None:
        self._controller.stop()
