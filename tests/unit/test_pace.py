"""An endpoint's measured pace (workers.pace): what the delivery worker parks for."""
from hypothesis import given
from hypothesis import strategies as st

from workers.pace import Pace


def answering(n: int, per_s: float, latency_s: float) -> Pace:
    """A pace busy from 0 s with `n` answers `per_s` a second, each taking `latency_s`."""
    pace = Pace()
    pace.busy(0.0)
    for i in range(1, n + 1):
        pace.answered(i / per_s, latency_s)
    return pace


def test_before_its_first_answer_an_endpoint_would_take_forever():
    pace = Pace()
    pace.busy(0.0)
    assert pace.drain_s(10, 8, 0.1) == float("inf")
    assert pace.drain_s(0, 8, 0.1) == 0.0


def test_a_fast_endpoint_behind_a_saturated_worker_drains_at_its_answer_rate():
    # Each request takes 0.3 s from the worker's point of view (its own loop is slow), but 2,000
    # answers come a second: 5,000 queued drain in 2.5 s, not in 5,000 / 64 x 0.3 = 23 s.
    pace = answering(2000, 2000, 0.3)
    assert pace.answers_per_s == 2000
    assert pace.drain_s(5000, 64, 1.0) == 2.5


def test_a_slow_endpoint_drains_at_concurrency_over_latency():
    pace = Pace()
    pace.busy(0.0)
    pace.answered(3.0, 3.0)  # one answer: no full window of answers yet
    assert round(pace.latency_s, 3) == 0.6
    assert round(pace.drain_s(100, 8, 3.0), 3) == 7.5


def test_an_endpoint_that_stopped_answering_is_slow_at_once():
    pace = answering(100, 100, 0.005)
    assert pace.drain_s(100, 8, 1.0) < 0.1
    # nothing answered for 4 s: at most 8 answers every 4 s
    assert pace.drain_s(100, 8, 5.0) == 50.0


def test_a_silence_shorter_than_a_second_is_not_taken_for_a_slow_endpoint():
    # The worker's loop spent 0.3 s on a batch of a thousand records: no answer was read meanwhile.
    pace = answering(2000, 2000, 0.05)
    assert pace.drain_s(2000, 64, 1.3) == 1.0
    assert pace.drain_s(2000, 64, 2.0) == 2000 / 64  # a whole second: no faster than 64 a second


def test_a_new_busy_period_counts_its_answers_afresh():
    pace = Pace()
    pace.busy(0.0)
    pace.answered(0.5, 0.01)
    pace.busy(100.0)  # idle for 100 s, then busy again: the idle time is not a slow pace
    pace.answered(100.5, 0.01)
    pace.answered(101.0, 0.01)
    assert pace.answers_per_s == 2 / 1.0
    assert pace.drain_s(10, 4, 101.0) < 0.1


@given(st.lists(st.tuples(st.floats(0.0001, 0.5), st.floats(0.0, 10.0)), min_size=1, max_size=50),
       st.integers(1, 5000), st.integers(1, 64), st.floats(0, 30))
def test_the_drain_grows_with_the_queue_and_is_never_negative(answers, queued, concurrency, later):
    pace = Pace()
    pace.busy(0.0)
    now = 0.0
    for gap, latency in answers:
        now += gap
        pace.answered(now, latency)
    at = now + later
    one, more = pace.drain_s(queued, concurrency, at), pace.drain_s(queued + 1, concurrency, at)
    assert 0 <= one <= more
