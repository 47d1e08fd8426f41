"""Event-time sessions per person, as Flink's session windows draw them, kept as plain data.

The intent job keeps a person's not-yet-closed events in keyed state and splits them into sessions here,
instead of using Flink's window operator, because PyFlink 2.2.1 cannot run session windows in thread mode
(``ClassCastException: VoidNamespace cannot be cast to TimeWindow``) and thread mode is what keeps the
profile within 200 ms under load (BENCHMARKS.md). The rules are Flink's: each event opens the window
``[t, t + gap)``, overlapping windows merge, and a session closes when the watermark reaches its last
millisecond (``end - 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PendingEvent", "Session", "is_closed", "sessions"]


@dataclass(frozen=True, order=True)
class PendingEvent:
    """One event of a session still open: its event time and the record as it arrived."""

    event_time_ms: int
    payload: str


@dataclass(frozen=True)
class Session:
    events: tuple[PendingEvent, ...]
    gap_ms: int

    @property
    def start_ms(self) -> int:
        return self.events[0].event_time_ms

    @property
    def end_ms(self) -> int:
        """Exclusive, as a window's end: the newest event plus the gap."""
        return self.events[-1].event_time_ms + self.gap_ms

    def holds(self, event_time_ms: int) -> bool:
        return self.start_ms <= event_time_ms < self.end_ms


def sessions(events: list[PendingEvent], gap_ms: int) -> list[Session]:
    """Split events into sessions, oldest first: a new one starts where two neighbours are ``gap_ms`` or more
    apart (their windows ``[t, t + gap)`` do not overlap)."""
    ordered = sorted(events)
    found: list[list[PendingEvent]] = []
    for event in ordered:
        if found and event.event_time_ms - found[-1][-1].event_time_ms < gap_ms:
            found[-1].append(event)
        else:
            found.append([event])
    return [Session(tuple(group), gap_ms) for group in found]


def is_closed(session: Session, watermark_ms: int) -> bool:
    """The watermark has passed the session's last millisecond: no event can join it any more."""
    return watermark_ms >= session.end_ms - 1
