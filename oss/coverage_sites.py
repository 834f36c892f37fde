"""The serving stations as the prediction needs them, kept while nothing changes."""
from __future__ import annotations

import asyncio

from oss.storage import base_stations
from oss.storage.sql import Executor
from radio.predict import Sites


class SitesCache:
    """The enabled stations (calibrated) as radio.predict.Sites, loaded again only when
    `base_stations.coverage_version` changes: a request costs one small query, not a reload."""

    def __init__(self) -> None:
        self._version: str | None = None
        self._sites: Sites | None = None
        self._lock = asyncio.Lock()

    async def get(self, db: Executor) -> Sites:
        # The version is read before the stations: what is loaded is at least as new as the key it is kept under.
        version = await base_stations.coverage_version(db)
        async with self._lock:
            if self._sites is None or version != self._version:
                self._sites = Sites.of(await base_stations.sites(db, base_stations.SERVING))
                self._version = version
            return self._sites
