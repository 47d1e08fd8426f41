"""The collector's event clock: which partitions of the events topic need a heartbeat, and stamped when.

Why an event clock and not the wall clock: a heartbeat tells the jobs "event time on this partition has
reached T". Stamped with the wall clock, a replay of last month's events through the collector would be
told it is today, and every replayed event after the first heartbeat would be late. So the clock follows
the traffic:

- for each event the broker acknowledged, ``candidate = timestamp − receivedAt`` (ms; ``timestamp`` after
  the clock-skew correction, as it is in the record);
- when an interval ends, the offset becomes the largest candidate of that interval, clamped to ``≤ 0``
  (never ahead of the wall clock); an interval without events keeps the previous offset;
- event clock = wall clock + offset. A live shop has an offset of a few ms below 0; a replay of events a
  month old has ``−(age of the newest replayed event)``, and its heartbeats go on from there at wall speed.

Partitions that had an event during the interval need no heartbeat (their events carry the time), so a
replay at full speed gets none between its events. A heartbeat written when an interval ends covers that
interval; a partition with nothing but heartbeats gets one at every interval.

Start-up: until the clock is known (an event was acknowledged, or an offset saved by a collector within
``resume_within_ms`` is resumed), :meth:`EventClock.tick` asks for no heartbeat at all, so a collector about
to receive a replay does not first stamp "now" on every partition.

Pure: no I/O, no clock of its own; :mod:`collector.heartbeat` feeds it and writes what it asks for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Beat", "EventClock", "SavedClock"]


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat to write: on ``partition``, stamped ``timestamp_ms`` (epoch ms, UTC)."""

    partition: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class SavedClock:
    """The offset as persisted for the next collector: ``offset_ms`` (≤ 0) as of wall time ``saved_at_ms``."""

    offset_ms: int
    saved_at_ms: int


class EventClock:
    """Feed it acknowledged events with :meth:`produced`; call :meth:`tick` once per heartbeat interval.

    :param resume_within_ms: a saved offset older than this (wall time) is not resumed; 0 never resumes.
    """

    def __init__(self, resume_within_ms: int) -> None:
        self.resume_within_ms = resume_within_ms
        self._offset_ms: int | None = None
        self._candidate_ms: int | None = None
        self._busy: set[int] = set()

    @property
    def offset_ms(self) -> int | None:
        """Event clock − wall clock, ms (≤ 0); ``None`` until the clock is known."""
        return self._offset_ms

    @property
    def known(self) -> bool:
        return self._offset_ms is not None

    @property
    def due(self) -> bool:
        """The next :meth:`tick` will stamp beats: the clock is known, or an event this interval makes it so."""
        return self._offset_ms is not None or self._candidate_ms is not None

    def produced(self, partition: int, event_ms: int | None, received_ms: int | None) -> None:
        """An event landed on ``partition``: that partition needs no heartbeat this interval.

        :param event_ms: its corrected ``timestamp``, epoch ms; ``None`` if unreadable (then only the partition counts).
        :param received_ms: its ``receivedAt``, epoch ms.
        """
        self._busy.add(partition)
        if event_ms is None or received_ms is None:
            return
        candidate = event_ms - received_ms
        if self._candidate_ms is None or candidate > self._candidate_ms:
            self._candidate_ms = candidate

    def resume(self, saved: SavedClock | None, now_ms: int) -> bool:
        """Take a persisted offset, if the clock is not known yet and ``saved`` is recent; True if taken."""
        if self.known or saved is None or self.resume_within_ms <= 0:
            return False
        if not 0 <= now_ms - saved.saved_at_ms <= self.resume_within_ms:
            return False
        self._offset_ms = min(0, saved.offset_ms)
        return True

    def tick(self, now_ms: int, partitions: Iterable[int]) -> list[Beat]:
        """End the interval: update the offset, and say which of ``partitions`` need a heartbeat, stamped when.

        :param now_ms: the wall clock, epoch ms.
        :param partitions: every partition of the events topic now.
        :returns: a beat for each partition without an event this interval, sorted; none while the clock is unknown.
        """
        if self._candidate_ms is not None:
            self._offset_ms = min(0, self._candidate_ms)
        busy, self._busy, self._candidate_ms = self._busy, set(), None
        if self._offset_ms is None:
            return []
        stamp = now_ms + self._offset_ms
        return [Beat(partition, stamp) for partition in sorted(set(partitions) - busy)]

    def saved(self, now_ms: int) -> SavedClock | None:
        """What to persist now for a collector that starts later; ``None`` while the clock is unknown."""
        return None if self._offset_ms is None else SavedClock(self._offset_ms, now_ms)
