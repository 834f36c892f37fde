"""Base stations: the registry's rows and what the coverage prediction reads of them."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from oss.storage.scope import fetch_scoped, in_subtree
from oss.storage.sql import Executor, Order, Page, Where, insert, select_page, update
from radio.calibration import MIN_RECEPTIONS as MIN_CALIBRATION_RECEPTIONS
from radio.predict import StationSite

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


# --- the registry (oss/api/base_stations.py, oss/station_file.py) ---
# An operator sees the stations of its groups and the network's own (no group: those a file or the demo
# registered without one).
VISIBLE = "(group_id IS NULL OR {})"
COLUMNS: Final = ("id", "name", "lat", "lng", "antenna_height_m", "antenna_gain_dbi", "cable_loss_db", "environment",
                  "state")


@dataclass(frozen=True)
class Filter:
    """Which stations a list shows: in one of `states`, with `name` in their name (case-insensitive)."""

    states: list[str] = field(default_factory=list)
    name: str | None = None


def _visible(param: str) -> str:
    return VISIBLE.format(in_subtree("group_id", param))


async def page(db: Executor, root: str, pg: Page, wanted: Filter) -> list[asyncpg.Record]:
    """The stations `root` sees, by id."""
    where = Where(root)
    where.add(_visible("$1"))
    if wanted.states:
        where.add(f"state = ANY({where.param(wanted.states)}::text[])")
    if wanted.name:
        where.add(f"name ILIKE {where.param('%' + like_escaped(wanted.name) + '%')}")
    return await select_page(db, "SELECT * FROM base_stations", where, Order(key="id"), pg)


def like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def scoped(db: Executor, root: str, ident: str) -> asyncpg.Record:
    """The station if `root` sees it, else 404."""
    return await fetch_scoped(db, f"SELECT * FROM base_stations WHERE id = $2 AND {_visible('$1')}", root, ident,
                              what="base station")


async def exists(db: Executor, ident: str) -> bool:
    return bool(await db.fetchval("SELECT 1 FROM base_stations WHERE id = $1", ident))


async def create(db: Executor, row: dict[str, Any]) -> None:
    """Insert one station (`row`: its columns, `group_id` and `created_by` included)."""
    await insert(db, "base_stations", row)


async def edit(db: Executor, ident: str, changes: dict[str, Any], *, edited_by: str | None) -> None:
    """Write the changed columns of a station, its editor and `updated_at` (the coverage version moves)."""
    await update(db, "base_stations", ident, changes, edited_by=edited_by)


async def heard(db: Executor, ident: str) -> bool:
    """Whether anything the station received is stored: a message it relayed or a downlink it sent.

    `messages.rinfos` has no index on stations: the scan stops at the first hit, so a heard station
    answers at once and only a never-heard one reads the whole table (a rare operator action)."""
    return bool(await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE rinfos @> $1::jsonb) "
        "OR EXISTS (SELECT 1 FROM message_downlinks WHERE station = $2)",
        [{"baseStation": ident}], ident))


async def delete(db: Executor, ident: str) -> None:
    await db.execute("DELETE FROM base_stations WHERE id = $1", ident)


async def save_all(db: Executor, rows: Iterable[dict[str, Any]], *, group_id: str | None) -> tuple[int, int, int]:
    """Create or update stations from their `COLUMNS` (a file import): (created, updated, unchanged). A
    station that exists keeps its group; one whose values are all the same is left alone (its `updated_at`,
    and so the coverage version, do not move)."""
    created = updated = unchanged = 0
    for row in rows:
        values = {c: row[c] for c in COLUMNS}
        kept = [c for c in values if c != "id"]
        was_new = await db.fetchval(
            f"INSERT INTO base_stations({', '.join(values)}, group_id) "
            f"VALUES ({', '.join(f'${i}' for i in range(1, len(values) + 1))}, ${len(values) + 1}) "
            f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in kept)}, updated_at = now() "
            f"WHERE ({', '.join(f'base_stations.{c}' for c in kept)}) "
            f"IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in kept)}) "
            "RETURNING xmax = 0", *values.values(), group_id)
        if was_new is None:
            unchanged += 1
        elif was_new:
            created += 1
        else:
            updated += 1
    return created, updated, unchanged
