"""Event-time sessions per person, as Flink's session windows draw them, kept as plain data.

The intent job keeps a person's not-yet-closed events in keyed state and splits them into sessions here,
instead of using Flink's window operator, because PyFlink 2.2.1 cannot run session windows in thread mode
(``ClassCastException: VoidNamespace cannot be cast to TimeWindow``) and thread mode is what keeps the
profile within 200 ms under load (BENCHMARKS.md). The rules are Flink's: each event opens the window
``[t, t + gap)``, overlapping windows merge, and a session closes when the watermark reaches its last
millisecond (``end - 1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Joined", "PendingEvent", "Session", "close_until", "is_closed", "join", "sessions"]


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


@dataclass(frozen=True)
class Joined:
    """What taking one event decided: the events to keep, the event's session to rescore, and when that
    session may close (an event-time timer; one per distinct time, as Flink keeps them)."""

    pending: tuple[PendingEvent, ...]
    session: Session
    timer_ms: int


def join(pending: Sequence[PendingEvent], event: PendingEvent, gap_ms: int) -> Joined:
    """Add an on-time event (the caller diverts those at or behind the watermark) to the open sessions.

    An on-time event can never join a session already closed: that session's end is at or before the
    watermark, and the event is after it by at least the gap.
    """
    kept = (*pending, event)
    session = next(s for s in sessions(list(kept), gap_ms) if event in s.events)
    return Joined(kept, session, session.end_ms - 1)


def close_until(
    pending: Sequence[PendingEvent], gap_ms: int, at_ms: int
) -> tuple[tuple[PendingEvent, ...], list[Session]]:
    """Event time has reached ``at_ms``: the sessions it closes (oldest first), and the events still open."""
    still_open: list[PendingEvent] = []
    closed: list[Session] = []
    for session in sessions(list(pending), gap_ms):
        if is_closed(session, at_ms):
            closed.append(session)
        else:
            still_open.extend(session.events)
    return tuple(still_open), closed
