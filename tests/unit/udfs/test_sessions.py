"""Sessions drawn as Flink's session windows draw them: windows [t, t + gap) that overlap merge."""

from __future__ import annotations

import itertools

from udfs.sessions import PendingEvent, is_closed, sessions

GAP = 30 * 60_000


def _at(*times: int) -> list[PendingEvent]:
    return [PendingEvent(t, f"e{t}") for t in times]


def test_events_closer_than_the_gap_share_a_session_and_the_gap_itself_splits():
    found = sessions(_at(0, GAP - 1, 2 * GAP - 2, 3 * GAP - 2), GAP)
    assert [[e.event_time_ms for e in s.events] for s in found] == [[0, GAP - 1, 2 * GAP - 2], [3 * GAP - 2]]
    assert found[0].end_ms == 3 * GAP - 2


def test_arrival_order_does_not_change_the_sessions():
    events = _at(0, 10, 5 * GAP, 5 * GAP + 7, 9 * GAP)
    expected = sessions(events, GAP)
    for order in itertools.permutations(events):
        assert sessions(list(order), GAP) == expected


def test_an_event_between_two_sessions_merges_them():
    assert len(sessions(_at(0, GAP + GAP // 2), GAP)) == 2
    assert len(sessions(_at(0, GAP + GAP // 2, GAP - 1), GAP)) == 1


def test_a_session_closes_when_the_watermark_reaches_its_last_millisecond():
    [session] = sessions(_at(100), GAP)
    assert not is_closed(session, 100 + GAP - 2)
    assert is_closed(session, 100 + GAP - 1)
    assert session.holds(100) and session.holds(100 + GAP - 1) and not session.holds(100 + GAP)
