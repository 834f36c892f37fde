"""Link quality: one grade from the best RSSI and the number of receiving stations.

Documented rule (Sigfox publishes none exactly; the reference says that in RC1 better than −122 dBm
with three stations is "excellent"): start from the best RSSI among the receiving stations,

    best RSSI > -110 dBm  -> 3 (EXCELLENT)
    best RSSI > -125 dBm  -> 2 (GOOD)
    best RSSI > -135 dBm  -> 1 (AVERAGE)
    otherwise             -> 0 (LIMIT)

then add one level for three or more stations and remove one for a single station, clamped to 0..3.
DATA_ADVANCED grades what was received with it (ingest), the coverage prediction what is predicted.
"""
from __future__ import annotations

from typing import Final

LQI_NAMES: Final = ("Limit", "Average", "Good", "Excellent")
RSSI_STEPS_DBM: Final = (-135.0, -125.0, -110.0)


def link_quality(best_rssi: float, station_count: int) -> int:
    """The 0..3 link quality of one message (see the module docstring)."""
    level = sum(best_rssi > step for step in RSSI_STEPS_DBM)
    if station_count >= 3:
        level += 1
    elif station_count <= 1:
        level -= 1
    return max(0, min(3, level))
