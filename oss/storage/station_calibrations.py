"""Station calibrations: the stored receptions they are fitted on, and the fits (radio/calibration.py).

A reception counts when the device's position is known: a static device (its registered lat/lng, for
the messages of its current registration) or, for any other device, the message's DATA_ADVANCED
computed location when its radius is at most POSITION_RADIUS_M. Each station in a message's `rinfos`
(what the store keeps of a message's duplicates) is one reception: station, RSSI, position.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from oss.storage.sql import Executor
from radio.calibration import Fit, Heard

POSITION_RADIUS_M: Final = 250.0

_HEARD = """
SELECT m.id AS message_id, r->>'baseStation' AS station_id, (r->>'rssi')::float8 AS rssi,
       CASE WHEN fixed THEN d.lat ELSE (m.computed_location->>'lat')::float8 END AS lat,
       CASE WHEN fixed THEN d.lng ELSE (m.computed_location->>'lng')::float8 END AS lng
FROM messages m
LEFT JOIN devices d ON d.id = m.device_id
CROSS JOIN LATERAL (SELECT d.lat IS NOT NULL AND d.lng IS NOT NULL
                           AND (m.registration_id IS NULL OR m.registration_id = d.registration_id) AS fixed) f
CROSS JOIN LATERAL jsonb_array_elements(m.rinfos) AS r
WHERE (fixed OR (m.computed_location->>'status' = '1'
                 AND (m.computed_location->>'radius')::float8 <= $1
                 AND m.computed_location ? 'lat' AND m.computed_location ? 'lng'))
  AND r->>'rssi' IS NOT NULL
  AND ($2::text IS NULL OR r->>'baseStation' = $2)
ORDER BY m.id, station_id
"""


async def heard(db: Executor, station_id: str | None = None) -> list[Heard]:
    """Every stored reception of a device at a known position (of `station_id` only, when given)."""
    rows = await db.fetch(_HEARD, POSITION_RADIUS_M, station_id)
    return [Heard(r["message_id"], r["station_id"], r["rssi"], r["lat"], r["lng"]) for r in rows]


async def upsert(db: Executor, fits: Iterable[Fit]) -> None:
    """Store `fits`, replacing each station's previous one; `fitted_at` changes (and so coverage_version)."""
    await db.executemany(
        "INSERT INTO station_calibrations(station_id, offset_db, slope_db, receptions, held_out, rmse_before_db, "
        "rmse_after_db, bias_before_db, bias_after_db, fitted_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, clock_timestamp()) "
        "ON CONFLICT (station_id) DO UPDATE SET offset_db = EXCLUDED.offset_db, slope_db = EXCLUDED.slope_db, "
        "receptions = EXCLUDED.receptions, held_out = EXCLUDED.held_out, "
        "rmse_before_db = EXCLUDED.rmse_before_db, rmse_after_db = EXCLUDED.rmse_after_db, "
        "bias_before_db = EXCLUDED.bias_before_db, bias_after_db = EXCLUDED.bias_after_db, "
        "fitted_at = EXCLUDED.fitted_at",
        [(f.station_id, f.offset_db, f.slope_db, f.receptions, f.held_out, f.rmse_before_db, f.rmse_after_db,
          f.bias_before_db, f.bias_after_db) for f in fits])


async def of_station(db: Executor, station_id: str) -> Fit | None:
    """The stored fit of a station, if any."""
    r = await db.fetchrow("SELECT * FROM station_calibrations WHERE station_id = $1", station_id)
    if r is None:
        return None
    return Fit(r["station_id"], r["offset_db"], r["slope_db"], r["receptions"], r["held_out"], r["rmse_before_db"],
               r["rmse_after_db"], r["bias_before_db"], r["bias_after_db"])
