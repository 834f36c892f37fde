"""The delivery worker's offset tracker (workers/offsets.py): which offset may be committed while
deliveries finish out of order. The committable offset of a partition is its oldest delivery still
in flight (or one past the newest seen when none is); it never goes backwards, and only what moved
since the last commit is offered."""
from __future__ import annotations

from aiokafka import TopicPartition

from workers.offsets import OffsetTracker

A, B = TopicPartition("deliveries", 0), TopicPartition("deliveries", 1)


def tracker_with(tp: TopicPartition, offsets: range) -> OffsetTracker:
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.add(tp, offset)
    return tracker


def test_nothing_seen_nothing_to_commit():
    assert OffsetTracker().committable() == {}
    assert OffsetTracker().in_flight() == 0


def test_the_oldest_delivery_in_flight_holds_the_partition_back():
    tracker = tracker_with(A, range(5))
    assert tracker.committable() == {A: 0}, "offset 0 is still in flight: nothing past it"
    tracker.done(A, 0)
    tracker.done(A, 1)
    assert tracker.committable() == {A: 2}
    tracker.done(A, 3)  # finished before 2 (a fast endpoint overtakes a slow one)
    assert tracker.committable() == {A: 2}, "3 is done but 2 is not: still 2"
    tracker.done(A, 2)
    assert tracker.committable() == {A: 4}, "4 is in flight"
    tracker.done(A, 4)
    assert tracker.committable() == {A: 5}, "all done: one past the newest seen"
    assert tracker.in_flight() == 0


def test_only_offsets_that_moved_since_the_last_commit_are_offered():
    tracker = tracker_with(A, range(3))
    tracker.done(A, 0)
    tracker.mark_committed({A: 1})
    assert tracker.committable() == {}, "1 was committed and 1 is still in flight"
    tracker.done(A, 1)
    assert tracker.committable() == {A: 2}
    tracker.mark_committed({A: 2})
    tracker.done(A, 2)
    assert tracker.committable() == {A: 3}


def test_never_backwards_when_an_older_offset_is_read_again():
    tracker = tracker_with(A, range(4))
    for offset in range(4):
        tracker.done(A, offset)
    tracker.mark_committed(tracker.committable())
    tracker.add(A, 1)  # read again (a rewind): in flight, but below what is committed
    assert tracker.committable() == {}
    assert tracker.in_flight() == 1
    tracker.done(A, 1)
    assert tracker.committable() == {}, "nothing new past 4"


def test_partitions_are_independent_and_counted_apart():
    tracker = tracker_with(A, range(3))
    for offset in range(10, 12):
        tracker.add(B, offset)
    tracker.done(B, 10)
    tracker.done(B, 11)
    assert tracker.committable() == {A: 0, B: 12}, "B finished: its offset moves while A's waits"
    assert (tracker.in_flight(), tracker.in_flight({A}), tracker.in_flight({B})) == (3, 3, 0)


def test_a_revoked_partition_is_forgotten_and_starts_afresh_when_it_comes_back():
    tracker = tracker_with(A, range(6))
    tracker.add(B, 0)
    for offset in range(6):
        tracker.done(A, offset)
    tracker.mark_committed({A: 6})
    tracker.forget({A})
    assert tracker.committable() == {B: 0}, "A is no longer ours: nothing to commit for it"
    assert tracker.in_flight({A}) == 0
    tracker.add(A, 3)  # assigned again, read from an older commit of the group
    tracker.done(A, 3)
    assert tracker.committable() == {A: 4, B: 0}, "nothing remembered of A from before"


def test_done_for_an_offset_never_added_changes_nothing():
    tracker = tracker_with(A, range(2))
    tracker.done(A, 7)
    tracker.done(B, 0)
    assert tracker.committable() == {A: 0}
    assert tracker.in_flight() == 2


def test_an_older_offset_read_again_before_the_commit_does_not_forget_the_newer_ones():
    tracker = tracker_with(A, range(6))
    tracker.add(A, 2)  # a copy of 2 read again (a rewind) while 0..5 are in flight
    for offset in range(6):
        tracker.done(A, offset)
    assert tracker.committable() == {A: 6}, "5 was read and is done: the partition is done up to 6"
