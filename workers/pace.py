"""How fast an endpoint drains its queue, as the delivery worker measures it.

The worker parks a delivery past the endpoint's share only when the endpoint's
queue would take long to drain. Two measures of its pace disagree when the
worker itself is the bottleneck: each request's latency then includes the time
the worker's own event loop took to come back to it (thousands of tasks ready),
so latency alone makes a fast endpoint look slow and parks for it, which costs
more than sending. The answers counted a second while it is busy do not have
that bias: the drain estimate takes the faster of the two, bounded by the time
since its last answer once that passes `SILENT_S` (an endpoint that stopped answering is
slow within a second; a shorter silence is as likely the worker's own loop, busy reading a
thousand records at once, and parked a fast endpoint's deliveries in the bench).
"""
from __future__ import annotations

from dataclasses import dataclass

RATE_WINDOW_S = 1.0     # answers are counted over windows of at least this long
SILENT_S = 1.0          # an endpoint silent this long bounds its pace; a shorter silence is the worker's own
LATENCY_WEIGHT = 0.2    # weight of a new latency in the moving average


@dataclass(slots=True)
class Pace:
    """One endpoint's measured pace; times are monotonic seconds."""

    latency_s: float = 0.0            # moving average of its requests' latency
    answered_at: float | None = None  # its last answer
    busy_since: float | None = None   # when its queue last went from empty to busy
    answers_per_s: float = 0.0        # answers a second over the last full window while busy
    _window_start: float = 0.0
    _window_answers: int = 0

    def busy(self, now: float) -> None:
        """Its queue went from empty to one: a new busy period, counted afresh."""
        self.busy_since = now
        self._window_start, self._window_answers = now, 0

    def answered(self, now: float, latency_s: float) -> None:
        """One of its requests was answered (whatever the answer)."""
        self.latency_s = (1 - LATENCY_WEIGHT) * self.latency_s + LATENCY_WEIGHT * latency_s
        self.answered_at = now
        self._window_answers += 1
        elapsed = now - self._window_start
        if elapsed >= RATE_WINDOW_S:
            self.answers_per_s = self._window_answers / elapsed
            self._window_start, self._window_answers = now, 0

    def drain_s(self, queued: int, concurrency: int, now: float) -> float:
        """Seconds its `queued` deliveries would take; infinite before its first answer."""
        if self.answered_at is None or queued <= 0:
            return float("inf") if queued > 0 else 0.0
        rate = max(self.answers_per_s, concurrency / self.latency_s if self.latency_s > 0 else float("inf"))
        silent_s = now - max(self.answered_at, self.busy_since or self.answered_at)
        if silent_s >= SILENT_S:
            rate = min(rate, concurrency / silent_s)  # nothing answered for silent_s: no faster than that
        return queued / rate if rate > 0 else float("inf")
