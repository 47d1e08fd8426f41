"""The collector's exceptions.

::

    PipelineError                        (connectors.errors)
    └── ConnectorError
        └── TransientError
            └── BackendUnavailable       Kafka or Redis cannot take the request now: answer 503 + Retry-After
    ValueError
    └── InvalidEvent                     (udfs.events) names the bad field
        └── Rejected                     ... plus a short reason code for metrics and the dead-letter topic
"""

from __future__ import annotations

from enum import StrEnum

from connectors.errors import TransientError
from udfs.events import InvalidEvent

__all__ = ["BackendUnavailable", "Reason", "Rejected"]


class Reason(StrEnum):
    """Why an event was refused; the ``reason`` label of the rejected-events metric (a small, fixed set).

    E-commerce properties that deviate from Segment's spec are no reason: those events are accepted and marked
    (:class:`collector.ecommerce.DeviationReason`).
    """

    MALFORMED_JSON = "malformed_json"
    TOO_LARGE = "too_large"
    INVALID_FIELD = "invalid_field"
    MISSING_IDENTITY = "missing_identity"
    BAD_TIMESTAMP = "bad_timestamp"
    UNAUTHORIZED = "unauthorized"


class Rejected(InvalidEvent):
    """An event (or a whole request body) the collector refuses.

    :param code: the reason class, for metrics and the dead-letter record.
    :param field: dotted path of the bad field, ``""`` for the body as a whole.
    :param reason: what is wrong, to be read after the field name.
    """

    def __init__(self, code: Reason, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.code = code

    def __reduce__(self) -> tuple[type[Rejected], tuple[Reason, str, str]]:
        return (Rejected, (self.code, self.field, self.reason))


class BackendUnavailable(TransientError):
    """Kafka or Redis did not take the request in time; nothing of it may be acknowledged.

    :param backend: ``"kafka"``, ``"redis"``, or ``"in_flight"`` when another request is still delivering the
        same events (the label of the unavailable-requests metric).
    """

    def __init__(self, backend: str, detail: str, message: str | None = None) -> None:
        super().__init__(message or f"{backend} is unavailable: {detail}")
        self.backend = backend
        self.detail = detail
