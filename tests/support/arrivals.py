"""Arrival orders and watermark schedules for property tests of event-time logic (hypothesis strategies).

Any arrival is allowed where no event comes more than the lateness bound after one that is newer in event
time, and any watermark may be interleaved that never passes an event still to come: the cases a job must
give the same answer for. The run ends with a final watermark, as a bounded input does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

__all__ = ["END_OF_TIME", "Step", "arrivals"]

#: the final watermark: every timer fires
END_OF_TIME = 2**62
#: ``("event", doc)`` or ``("watermark", ms)``
Step = tuple[str, Any]


@st.composite
def arrivals(
    draw: st.DrawFn, docs: Sequence[Any], time_of: Callable[[Any], int], bound_ms: int, lookback_ms: int
) -> list[Step]:
    """``docs`` in an order within ``bound_ms`` of event-time order, with watermarks in between.

    :param time_of: a doc's event time, epoch ms.
    :param lookback_ms: how far behind the oldest event still to come a drawn watermark may be.
    """
    times = [time_of(doc) for doc in docs]
    order = sorted(range(len(docs)), key=lambda i: (times[i] + draw(st.integers(0, bound_ms)), i))
    steps: list[Step] = []
    watermark = -(2**63)
    for position, i in enumerate(order):
        still_to_come = min(times[j] for j in order[position:])
        if draw(st.booleans()) and still_to_come - 1 > watermark:
            watermark = draw(st.integers(max(watermark, still_to_come - lookback_ms), still_to_come - 1))
            steps.append(("watermark", watermark))
        steps.append(("event", docs[i]))
    steps.append(("watermark", END_OF_TIME))
    return steps
