"""`backhaul stations import FILE.csv`: the operator's base stations from a CSV file, all or nothing.

The file's rules are `radio.station_rows` (the simulator reads the same file with them); this writes
the rows: each station is created, or updated when its id exists and a value differs (keeping its
group), in one transaction. Every write moves the coverage version (`oss.storage.base_stations.coverage_version`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import asyncpg

from oss.storage import base_stations
from radio.station_rows import StationRow


@dataclass(frozen=True)
class Imported:
    created: int
    updated: int
    unchanged: int


async def import_stations(conn: asyncpg.Connection, rows: list[StationRow], *,
                          group_id: str | None = None) -> Imported:
    """Create or update every station of `rows` in one transaction; new ones go in `group_id` (None: the
    network's own, seen by every operator)."""
    async with conn.transaction():
        return Imported(*await base_stations.save_all(conn, (asdict(r) for r in rows), group_id=group_id))
