"""The exceptions connectors raise, translated at one place per connector from the libraries' own.

::

    PipelineError
    └── ConnectorError
        ├── TransientError      safe to retry (timeouts, connection refused, overload)
        └── PermanentError      retrying will not help (bad credentials, rejected request)
"""

from __future__ import annotations

__all__ = ["ConnectorError", "PermanentError", "PipelineError", "TransientError"]


class PipelineError(Exception):
    """Root of every error this project raises on purpose."""


class ConnectorError(PipelineError):
    """An outside system did not do what we asked."""


class TransientError(ConnectorError):
    """The same call may succeed later; ``retry_after`` (seconds) is the other side's hint, if it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """The same call will fail again; the record goes to a dead-letter topic with ``detail`` (the answer)."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail
