"""``python -m esp_sandbox``: HTTP (uvicorn) on ``ESP_SANDBOX_HOST:ESP_SANDBOX_PORT`` and SMTP on ``ESP_SMTP_PORT``.

One process serves both, sharing the store and the fault queue; SMTP starts with the app and stops with it,
so ``GET /health`` answering means both are up (that is what ``make up`` waits for).
"""

from __future__ import annotations

import logging

import uvicorn

from esp_sandbox.app import create_app
from esp_sandbox.config import load_settings
from esp_sandbox.faults import FaultQueue
from esp_sandbox.metrics import SandboxMetrics
from esp_sandbox.smtp import Credentials, OutboxHandler, SmtpServer, ensure_port_free
from esp_sandbox.store import MessageStore
from esp_sandbox.tls import make_self_signed

__all__ = ["main"]

_GRACEFUL_SHUTDOWN_S = 5


class _NoLoginDataNotice(logging.Filter):
    """aiosmtpd 1.4 logs its own deprecation of ``Session.login_data`` on every successful AUTH; drop that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    smtp_log = logging.getLogger("mail.log")
    smtp_log.setLevel(logging.WARNING)  # aiosmtpd logs every SMTP line at INFO
    smtp_log.addFilter(_NoLoginDataNotice())
    settings = load_settings()
    try:
        ensure_port_free(settings.host, settings.smtp_port)
    except RuntimeError as exc:
        raise SystemExit(f"esp_sandbox: {exc}") from None
    store = MessageStore(settings.store_path)
    store.load()
    faults = FaultQueue()
    metrics = SandboxMetrics()
    certificate = make_self_signed(settings.tls_dir)
    smtp = SmtpServer(
        OutboxHandler(store, faults, metrics),
        settings.host,
        settings.smtp_port,
        certificate.server_context(),
        Credentials(settings.smtp_user, settings.smtp_password.get_secret_value()),
    )
    logging.getLogger(__name__).info("STARTTLS certificate for clients to trust: %s", certificate.cert_path)
    uvicorn.run(
        create_app(settings, store=store, faults=faults, metrics=metrics, smtp=smtp),
        host=settings.host,
        port=settings.port,
        access_log=False,
        server_header=False,
        log_level="info",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )


if __name__ == "__main__":
    main()
