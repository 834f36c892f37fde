"""The group tree: each group keeps its ancestors' ids, nearest first, in `path`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from oss.storage.scope import fetch_scoped, in_subtree
from oss.storage.sql import Executor, Order, Page, Where, insert, select_page, update

# Every group column, with its depth and whether it has sub-groups.
VIEW = """SELECT g.*, cardinality(g.path) AS level,
    NOT EXISTS (SELECT 1 FROM groups c WHERE c.parent_id = g.id) AS leaf FROM groups g"""
SORTS = {"id": Order(key="g.id"), "-id": Order(key="g.id DESC"),
         "name": Order(by=("lower(g.name)",), key="g.id"), "-name": Order(by=("lower(g.name) DESC",), key="g.id")}
# What a group may hold that stops its deletion (a name each, as the answer says it).
HOLDINGS = {"sub_groups": "groups WHERE parent_id", "device_types": "device_types WHERE group_id",
            "devices": "devices WHERE group_id", "contracts": "contract_infos WHERE group_id",
            "api_users": "api_users WHERE group_id", "users": "user_roles WHERE group_id",
            "base_stations": "base_stations WHERE group_id"}


async def scoped(db: Executor, root: str, ident: str) -> asyncpg.Record:
    """The group if it lies in `root`'s subtree, else 404."""
    return await fetch_scoped(db, f"SELECT * FROM groups WHERE id = $2 AND {in_subtree('id', '$1')}", root, ident,
                              what="group")


async def scoped_view(db: Executor, root: str, ident: str) -> asyncpg.Record:
    """`scoped`, with `level` and `leaf`."""
    return await fetch_scoped(db, f"{VIEW} WHERE g.id = $2 AND {in_subtree('g.id', '$1')}", root, ident,
                              what="group")


@dataclass(frozen=True)
class Filter:
    """Which groups a list shows: children of `parent_ids` (`deep`: every descendant), `name` in their name,
    of `types`; empty is no filter."""

    parent_ids: list[str] = field(default_factory=list)
    deep: bool = False
    name: str | None = None
    types: list[int] = field(default_factory=list)


async def page(db: Executor, root: str, pg: Page, wanted: Filter, sort: str) -> list[asyncpg.Record]:
    """Groups of `root`'s subtree (`VIEW`), filtered, sorted by one of `SORTS`."""
    where = Where(root)
    where.add(in_subtree("g.id", "$1"))
    if wanted.parent_ids:
        ids = where.param(wanted.parent_ids)
        where.add(f"g.path && {ids}::text[]" if wanted.deep else f"g.parent_id = ANY({ids})")
    if wanted.name:
        where.add(f"lower(g.name) LIKE {where.param(f'%{wanted.name.lower()}%')}")
    if wanted.types:
        where.add(f"g.type = ANY({where.param(wanted.types)}::int[])")
    return await select_page(db, VIEW, where, SORTS[sort], pg)


async def create(db: Executor, parent: asyncpg.Record | None, values: dict[str, Any]) -> None:
    """A new group under `parent` (None: a root)."""
    lineage = {"parent_id": parent["id"], "path": [parent["id"], *parent["path"]]} if parent \
        else {"parent_id": None, "path": []}
    await insert(db, "groups", {**values, **lineage})


async def edit(db: Executor, ident: str, changes: dict[str, Any]) -> None:
    await update(db, "groups", ident, changes, stamped=False)


async def stranded_devices(db: Executor, ident: str, ancestry: list[str], limit: int = 5) -> list[str]:
    """Devices of `ident`'s subtree whose device type's group would be neither in that subtree nor in
    `ancestry` (the groups above it after a move): the move would leave them on a type they cannot see."""
    rows = await db.fetch(
        f"""SELECT d.id FROM devices d JOIN device_types t ON t.id = d.device_type_id
            WHERE {in_subtree('d.group_id', '$1')} AND NOT ({in_subtree('t.group_id', '$1')})
              AND NOT (t.group_id = ANY($2::text[])) ORDER BY d.id LIMIT $3""", ident, ancestry, limit)
    return [r["id"] for r in rows]


async def move(db: Executor, ident: str, parent: asyncpg.Record) -> None:
    """Put the group under `parent`: its own path and the paths of every group below it change."""
    ancestry = [parent["id"], *parent["path"]]
    await db.execute("UPDATE groups SET path = path[1:array_position(path, $1)] || $2::text[] "
                     "WHERE path @> ARRAY[$1]::text[]", ident, ancestry)
    await db.execute("UPDATE groups SET parent_id = $2, path = $3::text[] WHERE id = $1", ident, parent["id"], ancestry)


async def holdings(db: Executor, ident: str) -> list[str]:
    """What the group still holds (sub groups, devices, ...), named in words."""
    exists = ", ".join(f"EXISTS (SELECT 1 FROM {source} = $1) AS {name}" for name, source in HOLDINGS.items())
    row = await db.fetchrow(f"SELECT {exists}", ident)
    return [name.replace("_", " ") for name, present in row.items() if present]


async def delete(db: Executor, ident: str) -> None:
    await db.execute("DELETE FROM groups WHERE id = $1", ident)


async def summaries(db: Executor, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Minimal views (`id`, `name`, `type`, `level`) by id, for `fields=` expansions."""
    rows = await db.fetch("SELECT id, name, type, cardinality(path) AS level FROM groups WHERE id = ANY($1)", ids)
    return {r["id"]: dict(r) for r in rows}


async def type_of(db: Executor, ident: str) -> int | None:
    """The group's type (0 SO: an operator), None when there is no such group."""
    return await db.fetchval("SELECT type FROM groups WHERE id = $1", ident)
