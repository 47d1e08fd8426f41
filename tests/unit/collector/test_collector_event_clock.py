"""The event clock's rule: which partitions need a heartbeat after an interval, and stamped when."""

from __future__ import annotations

from collector.event_clock import Beat, EventClock, SavedClock

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SECOND = 1_000
DAY = 86_400_000
HOUR = 3_600_000
PARTITIONS = range(4)


def test_a_fresh_clock_asks_for_no_beat_until_an_event_is_produced():
    clock = EventClock(resume_within_ms=HOUR)

    assert clock.tick(NOW, PARTITIONS) == []
    assert clock.tick(NOW + SECOND, PARTITIONS) == []
    assert clock.offset_ms is None and clock.saved(NOW) is None and not clock.due
    clock.produced(0, event_ms=NOW, received_ms=NOW)
    assert clock.due and not clock.known


def test_live_traffic_beats_the_idle_partitions_at_about_now():
    clock = EventClock(resume_within_ms=HOUR)
    clock.produced(2, event_ms=NOW - 40, received_ms=NOW - 5)  # a browser queue: happened 35 ms before receipt

    beats = clock.tick(NOW, PARTITIONS)

    assert clock.offset_ms == -35
    assert beats == [Beat(0, NOW - 35), Beat(1, NOW - 35), Beat(3, NOW - 35)]


def test_the_newest_event_of_the_interval_sets_the_offset():
    clock = EventClock(resume_within_ms=HOUR)
    clock.produced(0, event_ms=NOW - 900, received_ms=NOW - 100)
    clock.produced(1, event_ms=NOW - 110, received_ms=NOW - 100)
    clock.produced(0, event_ms=NOW - 500, received_ms=NOW - 100)

    assert clock.tick(NOW, PARTITIONS) == [Beat(2, NOW - 10), Beat(3, NOW - 10)]


def test_a_replay_of_old_events_is_stamped_from_where_the_replay_is_and_advances_at_wall_speed():
    clock = EventClock(resume_within_ms=HOUR)
    for n in range(10):
        clock.produced(n % 2, event_ms=NOW - 30 * DAY + n * SECOND, received_ms=NOW)

    first = clock.tick(NOW, PARTITIONS)
    later = clock.tick(NOW + 5 * SECOND, PARTITIONS)

    newest = NOW - 30 * DAY + 9 * SECOND
    assert first == [Beat(2, newest), Beat(3, newest)]
    assert later == [Beat(p, newest + 5 * SECOND) for p in PARTITIONS]


def test_an_idle_interval_keeps_the_offset():
    clock = EventClock(resume_within_ms=HOUR)
    clock.produced(0, event_ms=NOW - DAY, received_ms=NOW)
    clock.tick(NOW, PARTITIONS)

    quiet = [clock.tick(NOW + n * SECOND, PARTITIONS) for n in range(1, 4)]

    assert clock.offset_ms == -DAY
    assert [beats[0].timestamp_ms for beats in quiet] == [NOW - DAY + n * SECOND for n in range(1, 4)]


def test_live_events_after_a_replay_bring_the_clock_back_to_now():
    clock = EventClock(resume_within_ms=HOUR)
    clock.produced(0, event_ms=NOW - DAY, received_ms=NOW)
    clock.tick(NOW, PARTITIONS)
    clock.produced(1, event_ms=NOW + SECOND - 20, received_ms=NOW + SECOND)

    assert clock.tick(NOW + 2 * SECOND, PARTITIONS)[0] == Beat(0, NOW + 2 * SECOND - 20)


def test_an_event_ahead_of_the_wall_clock_never_puts_the_heartbeats_ahead():
    clock = EventClock(resume_within_ms=HOUR)
    clock.produced(0, event_ms=NOW + HOUR, received_ms=NOW)  # a client clock an hour ahead, without sentAt

    assert clock.tick(NOW, PARTITIONS) == [Beat(1, NOW), Beat(2, NOW), Beat(3, NOW)]
    assert clock.offset_ms == 0


def test_busy_partitions_get_no_beat_and_a_full_speed_replay_gets_none_at_all():
    clock = EventClock(resume_within_ms=HOUR)
    for interval in range(3):
        for partition in PARTITIONS:
            clock.produced(partition, event_ms=NOW - DAY + interval, received_ms=NOW + interval * SECOND)

        assert clock.tick(NOW + interval * SECOND, PARTITIONS) == []


def test_a_partition_with_only_heartbeats_gets_one_every_interval():
    clock = EventClock(resume_within_ms=HOUR)
    clock.produced(0, event_ms=NOW, received_ms=NOW)

    beaten = [[b.partition for b in clock.tick(NOW + n * SECOND, PARTITIONS)] for n in range(3)]

    assert beaten == [[1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]


def test_an_event_with_unreadable_times_still_makes_its_partition_busy_but_sets_no_clock():
    clock = EventClock(resume_within_ms=HOUR)
    clock.produced(1, event_ms=None, received_ms=NOW)

    assert clock.tick(NOW, PARTITIONS) == [] and not clock.known
    clock.produced(1, event_ms=None, received_ms=None)
    clock.produced(2, event_ms=NOW, received_ms=NOW)
    assert [b.partition for b in clock.tick(NOW + SECOND, PARTITIONS)] == [0, 3]


def test_partitions_added_to_the_topic_get_beats():
    clock = EventClock(resume_within_ms=HOUR)
    clock.produced(0, event_ms=NOW, received_ms=NOW)
    clock.tick(NOW, PARTITIONS)

    assert [b.partition for b in clock.tick(NOW + SECOND, range(6))] == [0, 1, 2, 3, 4, 5]


def test_start_up_resumes_a_recently_saved_clock_and_beats_at_once():
    before = EventClock(resume_within_ms=HOUR)
    before.produced(0, event_ms=NOW - DAY, received_ms=NOW)
    before.tick(NOW, PARTITIONS)
    saved = before.saved(NOW)
    restarted = EventClock(resume_within_ms=HOUR)

    assert restarted.resume(saved, NOW + 10 * 60 * SECOND)
    assert restarted.tick(NOW + 10 * 60 * SECOND, PARTITIONS) == [
        Beat(p, NOW - DAY + 10 * 60 * SECOND) for p in PARTITIONS
    ]


def test_start_up_ignores_a_stale_a_future_or_a_missing_saved_clock():
    for saved, now in [
        (SavedClock(-DAY, NOW), NOW + HOUR + 1),
        (SavedClock(-DAY, NOW + SECOND), NOW),
        (None, NOW),
    ]:
        clock = EventClock(resume_within_ms=HOUR)

        assert not clock.resume(saved, now)
        assert clock.tick(now, PARTITIONS) == []


def test_start_up_never_resumes_when_told_not_to():
    clock = EventClock(resume_within_ms=0)

    assert not clock.resume(SavedClock(0, NOW), NOW)


def test_an_event_produced_before_the_saved_clock_is_read_wins_over_it():
    clock = EventClock(resume_within_ms=HOUR)
    clock.produced(0, event_ms=NOW - 10, received_ms=NOW)
    clock.tick(NOW, PARTITIONS)

    assert not clock.resume(SavedClock(-DAY, NOW), NOW)
    assert clock.offset_ms == -10


def test_what_is_saved_is_the_current_offset_at_the_wall_time():
    clock = EventClock(resume_within_ms=HOUR)
    clock.produced(3, event_ms=NOW - 2 * DAY, received_ms=NOW)
    clock.tick(NOW, PARTITIONS)

    assert clock.saved(NOW + 5) == SavedClock(offset_ms=-2 * DAY, saved_at_ms=NOW + 5)
