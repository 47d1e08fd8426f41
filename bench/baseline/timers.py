"""Event-time timers as Flink's timer service keeps them: one per (step, key, time), fired in time order."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

__all__ = ["Timer", "TimerQueue"]

#: (time ms, step, key): tuples order by time first, which is the order Flink fires them in
Timer = tuple[int, int, str]


@dataclass
class TimerQueue:
    """A heap with lazy deletion: deleting only forgets the timer, and the stale heap entry is skipped later.

    As in Flink, registering a timer that is already set is a no-op, and a watermark fires every timer at or
    before it, including ones registered while firing (:meth:`pop_due` is called until it returns ``None``).
    """

    _heap: list[Timer] = field(default_factory=list)
    _live: set[Timer] = field(default_factory=set)

    def register(self, step: int, key: str, at_ms: int) -> None:
        timer = (at_ms, step, key)
        if timer not in self._live:
            self._live.add(timer)
            heapq.heappush(self._heap, timer)

    def delete(self, step: int, key: str, at_ms: int) -> None:
        self._live.discard((at_ms, step, key))

    def pop_due(self, watermark_ms: int) -> Timer | None:
        """The earliest live timer at or before the watermark, removed; ``None`` when there is none."""
        heap = self._heap
        while heap and heap[0][0] <= watermark_ms:
            timer = heapq.heappop(heap)
            if timer in self._live:
                self._live.remove(timer)
                return timer
        return None

    def __len__(self) -> int:
        return len(self._live)
