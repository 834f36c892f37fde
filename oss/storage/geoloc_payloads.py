"""Geolocation payload formats (the registry the operator fills) and the groups they are offered to."""
from __future__ import annotations

import asyncpg

from oss.storage.sql import Executor, Order, Page, Where, select_page, upsert


async def save(db: Executor, ident: str, name: str, group_id: str | None) -> None:
    """Create or update one format, offered to `group_id` and the groups below it (None: to every group)."""
    await upsert(db, "geoloc_payloads", ("id",), {"id": ident, "name": name, "group_id": group_id})


async def page_offered_to(db: Executor, group_id: str, pg: Page) -> list[asyncpg.Record]:
    """The formats a group may use: offered to every group, to it, or to a group above it; by name."""
    where = Where(group_id)
    where.add("(p.group_id IS NULL OR p.group_id = $1 OR "
              "p.group_id IN (SELECT unnest(path) FROM groups WHERE id = $1))")
    return await select_page(db, "SELECT p.id, p.name FROM geoloc_payloads p", where, Order(by=("lower(p.name)",), key="p.id"), pg)
