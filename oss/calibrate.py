"""`backhaul coverage calibrate`: fit every station's correction on the stored receptions and store the fits."""
from __future__ import annotations

from typing import Final

from oss.storage import base_stations, station_calibrations
from oss.storage.sql import Executor
from radio.calibration import Fit, Reception, TooFew, fit_station, predicted_receptions
from radio.link_budget import RadioConfiguration

# A disabled or planned station may have heard devices before (or while being tested): fit them all.
EVERY_STATE: Final = ("enabled", "disabled", "planned")


async def calibrate(db: Executor, rc: RadioConfiguration, station_id: str | None = None, *,
                    installation: str = "OUTDOOR", store: bool = True) -> list[Fit | TooFew]:
    """Fit every registered station (or `station_id` only), ordered by id, the located devices being of
    `installation`; store the fits when `store`.

    A station without enough receptions keeps its previous fit, if any (radio/calibration.py: MIN_RECEPTIONS).
    """
    stations = await base_stations.sites(db, EVERY_STATE, calibrated=False)
    if station_id is not None:
        station_id = station_id.upper()
        stations = [s for s in stations if s.id == station_id]
        if not stations:
            raise ValueError(f"station: {station_id!r} is not a registered base station")
    receptions = predicted_receptions(stations, await station_calibrations.heard(db, station_id), rc, installation)
    by_station: dict[str, list[Reception]] = {s.id: [] for s in stations}
    for r in receptions:
        by_station[r.station_id].append(r)
    results = [fit_station(s.id, by_station[s.id]) for s in stations]
    if store:
        await station_calibrations.upsert(db, [r for r in results if isinstance(r, Fit)])
    return results
