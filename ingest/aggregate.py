"""What DATA_ADVANCED computes from the stations that heard a message.

Link quality is graded by `radio.quality` (the rule is shared with the coverage prediction).

Computed location (documented estimate): the RSSI-weighted centroid of the
positions of the receiving stations, each weighted by its received power in
milliwatts, 10 ** (rssi / 10). The radius is the weighted root-mean-square
distance from the estimate to the stations, at least 1,000 m; a single
station gives its own position with a 10,000 m radius. `source` is 2 (network)
and `status` 1 (computed); with no station of known position, `status` is 20
and no coordinates are given.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from backhaul.geo import distance_m

SINGLE_STATION_RADIUS_M = 10_000
MIN_RADIUS_M = 1_000


def computed_location(receptions: Sequence[tuple[str, float]],
                      stations: Mapping[str, Mapping]) -> dict:
    """Estimate a device position from `(station id, best rssi)` pairs and the station registry."""
    points = []
    for station_id, rssi in receptions:
        st = stations.get(station_id)
        if st is None or st.get("lat") is None or st.get("lng") is None:
            continue
        points.append((float(st["lat"]), float(st["lng"]), 10 ** (rssi / 10)))
    if not points:
        return {"source": 2, "status": 20}
    if len(points) == 1:
        lat, lng, _ = points[0]
        return {"lat": round(lat, 6), "lng": round(lng, 6), "radius": SINGLE_STATION_RADIUS_M,
                "source": 2, "status": 1}
    total = sum(w for _, _, w in points)
    lat = sum(la * w for la, _, w in points) / total
    lng = sum(ln * w for _, ln, w in points) / total
    spread = math.sqrt(sum(w * distance_m(lat, lng, la, ln) ** 2 for la, ln, w in points) / total)
    return {"lat": round(lat, 6), "lng": round(lng, 6), "radius": max(MIN_RADIUS_M, int(round(spread))),
            "source": 2, "status": 1}
