"""Base stations: the registry's rows and what the coverage prediction reads of them."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from oss.storage.sql import Executor
from radio.predict import StationSite

# A calibration is used once it rests on this many receptions (radio/calibration.py explains the figure).
MIN_CALIBRATION_RECEPTIONS: Final = 30
SERVING: Final = ("enabled",)
WITH_PLANNED: Final = ("enabled", "planned")


async def by_ids(db: Executor, ids: list[str]) -> dict[str, dict[str, Any]]:
    """`id`, `name`, `lat`, `lng` of the stations, by id."""
    rows = await db.fetch("SELECT id, name, lat, lng FROM base_stations WHERE id = ANY($1)", ids)
    return {r["id"]: dict(r) for r in rows}


async def on_map(db: Executor, states: Iterable[str]) -> list[dict[str, Any]]:
    """`id`, `name`, `lat`, `lng` and `state` of the stations in `states`, by id (the service map's markers)."""
    rows = await db.fetch("SELECT id, name, lat, lng, state FROM base_stations WHERE state = ANY($1) ORDER BY id",
                          list(states))
    return [dict(r) for r in rows]


async def sites(db: Executor, states: Iterable[str] = SERVING, *, calibrated: bool = True) -> list[StationSite]:
    """The stations in `states` as the prediction sees them (ordered by id), with their calibration when
    it rests on enough receptions and `calibrated`."""
    rows = await db.fetch(
        "SELECT s.id, s.lat, s.lng, s.antenna_height_m, s.antenna_gain_dbi, s.cable_loss_db, s.environment, "
        "       c.offset_db, c.slope_db, c.receptions "
        "FROM base_stations s LEFT JOIN station_calibrations c ON c.station_id = s.id "
        "WHERE s.state = ANY($1) ORDER BY s.id", list(states))
    return [StationSite(
        id=r["id"], lat=r["lat"], lng=r["lng"], antenna_height_m=r["antenna_height_m"],
        antenna_gain_dbi=r["antenna_gain_dbi"], cable_loss_db=r["cable_loss_db"], environment=r["environment"],
        **({"offset_db": r["offset_db"], "slope_db": r["slope_db"]}
           if calibrated and (r["receptions"] or 0) >= MIN_CALIBRATION_RECEPTIONS else {}))
        for r in rows]


async def coverage_version(db: Executor) -> str:
    """A value that changes whenever a station or a calibration does: the tile caches' key."""
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM base_stations) AS n, (SELECT max(updated_at) FROM base_stations) AS s, "
        "       (SELECT count(*) FROM station_calibrations) AS m, "
        "       (SELECT max(fitted_at) FROM station_calibrations) AS c")
    return f"{row['n']}-{row['s'] and row['s'].timestamp()}-{row['m']}-{row['c'] and row['c'].timestamp()}"
