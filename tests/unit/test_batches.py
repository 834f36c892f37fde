"""BATCH_URL batches (workers.batches) under steady traffic, on a fake clock: a batch goes when its
window has passed since its first member, however many keep arriving, or at once when it is full."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.clock import FakeClock
from workers.batches import Batches


def batches(window_s: float = 1.0, max_members: int = 1000) -> tuple[Batches[int], FakeClock]:
    clock = FakeClock()
    return Batches(window_s, max_members, clock), clock


def test_a_batch_goes_at_its_window_even_while_members_keep_arriving():
    b, clock = batches(window_s=1.0)
    sent = []
    for n in range(80):  # one member every 125 ms for 10 s, steadily (binary fractions: exact sums)
        sent += b.due()  # the worker looks, then the next member arrives
        assert b.add("cb", n) is None
        clock.advance(0.125)
    # every batch went 1 s after its first member: 8 members each, none held back by the next
    assert [key for key, _ in sent] == ["cb"] * 9
    assert [members for _, members in sent] == [list(range(i, i + 8)) for i in range(0, 72, 8)]
    assert len(b) == 8  # the last window is still open


def test_the_window_boundary_is_inclusive_to_the_millisecond():
    b, clock = batches(window_s=1.0)
    b.add("cb", 1)
    clock.advance(0.999)
    assert b.due() == []
    clock.advance(0.001)
    assert b.due() == [("cb", [1])]
    assert b.due() == [] and len(b) == 0


def test_a_member_just_after_the_window_starts_the_next_batch():
    b, clock = batches(window_s=1.0)
    b.add("cb", 1)
    clock.advance(1.001)
    assert b.due() == [("cb", [1])]
    b.add("cb", 2)  # opens a new window from now
    clock.advance(0.999)
    assert b.due() == []
    clock.advance(0.001)
    assert b.due() == [("cb", [2])]


def test_a_late_member_of_an_open_window_does_not_move_its_deadline():
    b, clock = batches(window_s=1.0)
    b.add("cb", 1)
    clock.advance(0.9)
    b.add("cb", 2)
    clock.advance(0.1)
    assert b.due() == [("cb", [1, 2])]


def test_a_full_batch_goes_at_once_and_the_next_member_opens_another():
    b, clock = batches(window_s=1.0, max_members=3)
    assert b.add("cb", 1) is None
    assert b.add("cb", 2) is None
    assert b.add("cb", 3) == [1, 2, 3]
    assert len(b) == 0 and b.due() == []
    clock.advance(0.5)
    assert b.add("cb", 4) is None  # its window runs from now, not from the full batch's first member
    clock.advance(0.999)
    assert b.due() == []
    clock.advance(0.001)
    assert b.due() == [("cb", [4])]


def test_a_batch_of_one_goes_with_its_only_member():
    b, _ = batches(max_members=1)
    assert b.add("cb", 7) == [7]
    assert len(b) == 0


def test_callbacks_are_batched_apart_and_due_oldest_first():
    b, clock = batches(window_s=1.0, max_members=2)
    b.add("late", 1)
    clock.advance(0.2)
    b.add("early", 2)
    clock.advance(0.2)
    assert b.add("early", 3) == [2, 3]  # only that callback's batch was full
    b.add("other", 4)
    clock.advance(0.8)
    assert b.due() == [("late", [1])]
    clock.advance(0.2)
    assert b.due() == [("other", [4])]


def test_a_zero_window_sends_at_the_next_look():
    b, _ = batches(window_s=0.0)
    b.add("cb", 1)
    assert b.due() == [("cb", [1])]


@pytest.mark.parametrize("window_s, max_members, field", [(-0.1, 10, "window_s"), (float("nan"), 10, "window_s"),
                                                          (1.0, 0, "max_members")])
def test_nonsense_limits_are_refused(window_s, max_members, field):
    with pytest.raises(ValueError, match=field):
        Batches(window_s, max_members)


TICK = 1 / 1024  # a binary fraction of a second: sums of ticks are exact, so boundaries are too


@given(gaps=st.lists(st.integers(min_value=0, max_value=1500), min_size=1, max_size=60),
       window=st.integers(min_value=1, max_value=1024), max_members=st.integers(min_value=1, max_value=8))
def test_under_any_traffic_no_member_waits_past_its_window_nor_is_lost_or_reordered(gaps, window, max_members):
    """Members arriving `gaps` ticks apart, looked at every tick: each batch holds at most max_members,
    goes exactly at its window after its first member unless it filled up first, and all go, in order."""
    clock = FakeClock(0.0)
    b = Batches(window * TICK, max_members, clock)
    arrived: dict[int, float] = {}
    gone: list[list[int]] = []

    def look(ticks: int) -> None:
        for _ in range(ticks):
            clock.advance(TICK)
            for _, members in b.due():
                assert clock.now - arrived[members[0]] == window * TICK
                gone.append(members)

    for n, gap in enumerate(gaps):
        look(gap)
        arrived[n] = clock.now
        full = b.add("cb", n)
        if full is not None:
            assert len(full) == max_members
            gone.append(full)
    look(window)
    assert [m for batch in gone for m in batch] == list(range(len(gaps)))
    assert all(1 <= len(batch) <= max_members for batch in gone)
    assert len(b) == 0
