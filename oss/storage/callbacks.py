"""Callbacks of a device type (their secret columns hold sealed values only)."""
from __future__ import annotations

from typing import Any

import asyncpg

from oss.storage.scope import fetch_scoped
from oss.storage.sql import Executor, insert, update


async def of_scoped_device_type(db: Executor, device_type_id: str, ident: str) -> asyncpg.Record:
    """The callback of a device type found by `device_types.scoped` (so in the caller's subtree), else 404."""
    return await fetch_scoped(db, "SELECT * FROM callbacks WHERE id = $1 AND device_type_id = $2", ident,
                              device_type_id, what="callback")


async def of_device_type(db: Executor, device_type_id: str) -> list[asyncpg.Record]:
    """Every callback of the device type, oldest first."""
    return await db.fetch("SELECT * FROM callbacks WHERE device_type_id = $1 ORDER BY created_at, id", device_type_id)


async def create(db: Executor, values: dict[str, Any]) -> None:
    await insert(db, "callbacks", values)


async def edit(db: Executor, ident: str, changes: dict[str, Any]) -> None:
    await update(db, "callbacks", ident, changes)


async def delete(db: Executor, ident: str) -> None:
    await db.execute("DELETE FROM callbacks WHERE id = $1", ident)


async def set_enabled(db: Executor, ident: str, enabled: bool) -> None:
    """Enable or disable; enabling also clears `dead`."""
    await db.execute("UPDATE callbacks SET enabled = $2, dead = dead AND NOT $2, updated_at = now() WHERE id = $1",
                     ident, enabled)


async def make_downlink_hook(db: Executor, device_type_id: str, ident: str) -> None:
    """Make the callback its device type's downlink callback, and no other."""
    await db.execute("UPDATE callbacks SET downlink_hook = (id = $2), updated_at = now() "
                     "WHERE device_type_id = $1 AND (downlink_hook OR id = $2)", device_type_id, ident)
