"""The stations as the prediction needs them, kept while nothing changes."""
from __future__ import annotations

import asyncio

from oss.storage import base_stations
from oss.storage.sql import Executor
from radio.predict import Sites


class SitesCache:
    """The enabled stations (with the planned ones for a forecast), calibrated, as radio.predict.Sites,
    loaded again only when `base_stations.coverage_version` changes: a request costs one small query,
    not a reload. One cache serves the coverage API, its jobs and the tiles."""

    def __init__(self) -> None:
        self._sites: dict[tuple[str, bool], Sites] = {}
        self._lock = asyncio.Lock()

    async def get(self, db: Executor, *, forecast: bool = False, version: str | None = None) -> Sites:
        """The stations of `version` (read now when not given); planned ones too when `forecast`."""
        # The version is read before the stations: what is loaded is at least as new as the key it is kept under.
        version = version or await base_stations.coverage_version(db)
        key = (version, forecast)
        async with self._lock:
            found = self._sites.get(key)
            if found is None:
                states = base_stations.WITH_PLANNED if forecast else base_stations.SERVING
                found = Sites.of(await base_stations.sites(db, states))
                self._sites = {k: v for k, v in self._sites.items() if k[0] == version}
                self._sites[key] = found
            return found
