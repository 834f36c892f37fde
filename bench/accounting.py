"""Matching what was sent with what the receiver got: delivered, lost, duplicates, latency.

A message is identified by (device, seqNumber). It is delivered for a kind
(DATA, DATA_ADVANCED) when the receiver saw that kind for it at least once;
further arrivals of the same kind are duplicates; a message never seen by the
end of the grace period is lost. Arrivals for messages this step did not send
are counted as unmatched (late ones of an earlier step, or a bug).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from bench.load import Key
from bench.receiver import ADVANCED, DATA, Arrival

KINDS = (DATA, ADVANCED)


def nearest_rank(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values, nearest-rank method."""
    n = len(sorted_values)
    return sorted_values[min(n - 1, max(0, math.ceil(q * n) - 1))]


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99, mean and max of `values` (milliseconds), rounded to 0.1."""
    if not values:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    s = sorted(values)
    return {"count": len(s), **{f"p{int(q * 100)}": round(nearest_rank(s, q), 1) for q in (0.50, 0.95, 0.99)},
            "mean": round(sum(s) / len(s), 1), "max": round(s[-1], 1)}


class Ledger:
    """Sent messages on one side, arrivals added as they come on the other."""

    def __init__(self, first_ms: dict[Key, int], window_s: float) -> None:
        self.first_ms = first_ms
        self.window_ms = window_s * 1000
        self.arrived: dict[str, dict[Key, float]] = {k: {} for k in KINDS}
        self.duplicates = {k: 0 for k in KINDS}
        self.unmatched = 0

    def add(self, arrivals: Iterable[Arrival]) -> None:
        first_ms = self.first_ms
        for kind, device, seq, at in arrivals:
            key = (device, seq)
            if key not in first_ms or kind not in self.arrived:
                self.unmatched += 1
                continue
            seen = self.arrived[kind]
            if key in seen:
                self.duplicates[kind] += 1
            else:
                seen[key] = at

    def complete(self) -> bool:
        n = len(self.first_ms)
        return all(len(self.arrived[k]) >= n for k in KINDS)

    def lost(self, kind: str) -> list[Key]:
        seen = self.arrived[kind]
        return sorted(k for k in self.first_ms if k not in seen)

    def latencies_ms(self, since_ms: float = 0) -> list[float]:
        """First frame -> DATA callback arrival, per delivered message first heard at or after `since_ms`."""
        first = self.first_ms
        return [at * 1000 - first[k] for k, at in self.arrived[DATA].items() if first[k] >= since_ms]

    def lateness_ms(self) -> list[float]:
        """DATA_ADVANCED arrival after its deadline (first frame + window), per delivered message."""
        first, window = self.first_ms, self.window_ms
        return [at * 1000 - first[k] - window for k, at in self.arrived[ADVANCED].items()]

    def summary(self, *, sample: int = 20) -> dict:
        """Counts that always add up: for each kind, delivered + lost == sent."""
        out: dict = {"sent": len(self.first_ms), "unmatched": self.unmatched}
        lost_messages: set[Key] = set()
        for kind in KINDS:
            lost = self.lost(kind)
            lost_messages.update(lost)
            out[kind] = {"delivered": len(self.arrived[kind]), "lost": len(lost),
                         "duplicates": self.duplicates[kind], "lostSample": [list(k) for k in lost[:sample]]}
        out["lostMessages"] = len(lost_messages)
        out["duplicates"] = sum(self.duplicates.values())
        return out
