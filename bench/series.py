"""Per-second time series of one step, for the plot and the JSON."""
from __future__ import annotations

from collections import defaultdict

from bench.accounting import Ledger, nearest_rank
from bench.receiver import ADVANCED, DATA
from schemas.frames import FrameRecord


def per_second(record: list[FrameRecord], ledger: Ledger, t0: float) -> dict[str, list]:
    """Frames sent, callbacks received and DATA latency (p50, p99) per second since `t0` (epoch s)."""
    frames: dict[int, int] = defaultdict(int)
    for f in record:
        frames[int(f["time"] / 1000 - t0)] += 1
    received: dict[str, dict[int, int]] = {DATA: defaultdict(int), ADVANCED: defaultdict(int)}
    latency: dict[int, list[float]] = defaultdict(list)
    first = ledger.first_ms
    for kind in (DATA, ADVANCED):
        for key, at in ledger.arrived[kind].items():
            sec = int(at - t0)
            received[kind][sec] += 1
            if kind == DATA:
                latency[sec].append(at * 1000 - first[key])
    last = max([0, *frames, *received[DATA], *received[ADVANCED]])
    seconds = list(range(0, last + 1))
    p50, p99 = [], []
    for s in seconds:
        values = sorted(latency.get(s, ()))
        p50.append(round(nearest_rank(values, 0.5), 1) if values else None)
        p99.append(round(nearest_rank(values, 0.99), 1) if values else None)
    return {"second": seconds, "framesSent": [frames.get(s, 0) for s in seconds],
            "dataReceived": [received[DATA].get(s, 0) for s in seconds],
            "advancedReceived": [received[ADVANCED].get(s, 0) for s in seconds],
            "latencyP50Ms": p50, "latencyP99Ms": p99}
