"""Undelivered callbacks: deliveries whose retries are exhausted, newest first."""
from __future__ import annotations

from oss.storage.registrations import visible
from oss.storage.scope import subtree
from oss.storage.sql import CursorPage, Executor, NewestFirst, Page, Where, Window, select_newest

NEWEST = NewestFirst(key="delivery_id")


async def _page(db: Executor, where: Where, pg: Page, window: Window) -> CursorPage:
    where.within("time", window)
    return await select_newest(db, "SELECT * FROM undelivered_callbacks", where, NEWEST, pg)


async def of_registration(db: Executor, registration_id: int, pg: Page, window: Window) -> CursorPage:
    """A device's (its current registration)."""
    where = Where(registration_id)
    where.add("registration_id = $1")
    return await _page(db, where, pg, window)


async def of_device_type(db: Executor, device_type_id: str, pg: Page, window: Window) -> CursorPage:
    where = Where(device_type_id)
    where.add("device_type_id = $1")
    where.add(visible())
    return await _page(db, where, pg, window)


async def of_callback(db: Executor, callback_id: str, pg: Page, window: Window) -> CursorPage:
    where = Where(callback_id)
    where.add("callback_id = $1")
    where.add(visible())
    return await _page(db, where, pg, window)


async def of_group(db: Executor, group_id: str, pg: Page, window: Window) -> CursorPage:
    """Those of every device in the group and its sub-groups."""
    where = Where(group_id)
    where.add(f"group_id IN {subtree('$1')}")
    where.add(visible())
    return await _page(db, where, pg, window)
