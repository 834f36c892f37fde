"""Device events (keep-alive ERROR / RESTORED, sequence breaks, service frames, ACKNOWLEDGE) as the store keeps them."""
from __future__ import annotations

from oss.storage.sql import CursorPage, Executor, NewestFirst, Page, Where, Window, select_newest

NEWEST = NewestFirst(key="id")


async def page_of_registration(db: Executor, registration_id: int, pg: Page, window: Window,
                               types: list[str]) -> CursorPage:
    """A device's events (its current registration), newest first; `types` empty: every type."""
    where = Where(registration_id)
    where.add("registration_id = $1")
    if types:
        where.add(f"type = ANY({where.param(types)}::text[])")
    where.within("time", window)
    return await select_newest(db, "SELECT id, type, time, body FROM device_events", where, NEWEST, pg)
