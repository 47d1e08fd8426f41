"""The exceptions connectors raise, translated at one place per connector from the libraries' own.

::

    PipelineError
    └── ConnectorError
        ├── TransientError      safe to retry (timeouts, connection refused, overload)
        │   ├── OutcomeUnknown       the request went out and no answer says what became of it: ask first
        │   └── CredentialsRejected  the other side refused our key: no call with it will work until fixed
        └── PermanentError      retrying will not help (a rejected request)
"""

from __future__ import annotations

__all__ = [
    "ConnectorError",
    "CredentialsRejected",
    "OutcomeUnknown",
    "PermanentError",
    "PipelineError",
    "TransientError",
]


class PipelineError(Exception):
    """Root of every error this project raises on purpose."""


class ConnectorError(PipelineError):
    """An outside system did not do what we asked."""


class TransientError(ConnectorError):
    """The same call may succeed later; ``retry_after`` (seconds) is the other side's hint, if it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeUnknown(TransientError):
    """The request reached the other side, then a timeout, a reset connection or a 5xx: it may have been acted
    on. Repeating it could do it twice, so the caller first asks whether it was (delivery: reconciliation)."""


class CredentialsRejected(TransientError):
    """The other side refused the credential itself (401/403, Mandrill's ``Invalid_Key``, SMTP 535): every call
    with it fails until someone fixes it, so it is a fault of the connection, not of the record being sent."""


class PermanentError(ConnectorError):
    """The same call will fail again; the record goes to a dead-letter topic with ``detail`` (the answer)."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail
