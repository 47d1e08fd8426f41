"""``python -m collector``: serve the collector with uvicorn on ``COLLECTOR_HOST:COLLECTOR_PORT`` (127.0.0.1:8080)."""

from __future__ import annotations

import logging
import time

import uvicorn

from collector.app import create_app
from collector.config import load_settings

__all__ = ["main"]

_REPEAT_AFTER_S = 30.0


class _OncePerInterval(logging.Filter):
    """While the broker is down aiokafka logs the same line several times a second; keep one per 30 s."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka"):
            return True
        now = time.monotonic()
        key = f"{record.name}:{record.msg}"
        if now - self._last.get(key, float("-inf")) < _REPEAT_AFTER_S:
            return False
        self._last[key] = now
        return True


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_OncePerInterval())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = load_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        server_header=False,
        log_level="info",
        timeout_graceful_shutdown=15,
    )


if __name__ == "__main__":
    main()
