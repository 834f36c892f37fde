"""Device types: keep-alive, downlink mode, payload grammar, alert e-mail, and their contract."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from oss.errors import NotFound
from oss.storage.scope import in_groups, in_subtree
from oss.storage.sql import Executor, Order, Page, Where, insert, select_page, update

SORTS = {"id": Order(key="t.id"), "-id": Order(key="t.id DESC"),
         "name": Order(by=("lower(t.name)",), key="t.id"), "-name": Order(by=("lower(t.name) DESC",), key="t.id")}


async def scoped(db: Executor, root: str, ident: str, *, field: str | None = None) -> asyncpg.Record:
    """The device type if it lies in `root`'s subtree, else 404 (naming `field` when the id came in one)."""
    row = await db.fetchrow(f"SELECT * FROM device_types WHERE id = $2 AND {in_subtree('group_id', '$1')}",
                            root, ident)
    if row is None:
        raise NotFound(f"{field}: device type {ident} was not found." if field
                       else "The requested device type was not found.")
    return row


async def get(db: Executor, ident: str) -> asyncpg.Record | None:
    """The device type, whoever owns it."""
    return await db.fetchrow("SELECT * FROM device_types WHERE id = $1", ident)


@dataclass(frozen=True)
class Filter:
    """Which device types a list shows: `name` in their name, in `group_ids` (`deep`: or below), on
    `contract_id`, of `payload_type`; empty is no filter."""

    name: str | None = None
    group_ids: list[str] = field(default_factory=list)
    deep: bool = False
    contract_id: str | None = None
    payload_type: int | None = None


async def page(db: Executor, root: str, pg: Page, wanted: Filter, sort: str) -> list[asyncpg.Record]:
    """Device types of `root`'s subtree, filtered, sorted by one of `SORTS`."""
    where = Where(root)
    where.add(in_subtree("t.group_id", "$1"))
    if wanted.name:
        where.add(f"lower(t.name) LIKE {where.param(f'%{wanted.name.lower()}%')}")
    if wanted.group_ids:
        where.add(in_groups("t.group_id", where.param(wanted.group_ids), deep=wanted.deep))
    if wanted.contract_id:
        where.add(f"t.contract_id = {where.param(wanted.contract_id)}")
    if wanted.payload_type is not None:
        where.add(f"t.payload_type = {where.param(wanted.payload_type)}")
    return await select_page(db, "SELECT t.* FROM device_types t", where, SORTS[sort], pg)


async def create(db: Executor, values: dict[str, Any]) -> None:
    await insert(db, "device_types", values)


async def edit(db: Executor, ident: str, changes: dict[str, Any], *, edited_by: str) -> None:
    await update(db, "device_types", ident, changes, edited_by=edited_by)


async def has_devices(db: Executor, ident: str) -> bool:
    return await db.fetchval("SELECT EXISTS (SELECT 1 FROM devices WHERE device_type_id = $1)", ident)


async def delete(db: Executor, ident: str) -> None:
    await db.execute("DELETE FROM device_types WHERE id = $1", ident)


async def token_terms(db: Executor, ids: list[str]) -> dict[str, asyncpg.Record]:
    """By device type id: its `contract_id` and that contract's `token_duration`."""
    rows = await db.fetch("SELECT t.id, t.contract_id, c.token_duration FROM device_types t "
                          "LEFT JOIN contract_infos c ON c.id = t.contract_id WHERE t.id = ANY($1)", ids)
    return {r["id"]: r for r in rows}


async def summaries(db: Executor, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Minimal views (`id`, `name`) by id, for `fields=` expansions."""
    return {r["id"]: dict(r) for r in await db.fetch("SELECT id, name FROM device_types WHERE id = ANY($1)", ids)}
