"""A clock the test moves by hand, for code that takes one (`clock=`): time-dependent behaviour is
tested at its boundaries without sleeping."""
from __future__ import annotations


class FakeClock:
    """Seconds (monotonic or epoch, as the code under test reads them) that move only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
