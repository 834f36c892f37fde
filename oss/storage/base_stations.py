"""Base stations, as the message history shows them."""
from __future__ import annotations

from typing import Any

from oss.storage.sql import Executor


async def by_ids(db: Executor, ids: list[str]) -> dict[str, dict[str, Any]]:
    """`id`, `name`, `lat`, `lng` of the stations, by id."""
    rows = await db.fetch("SELECT id, name, lat, lng FROM base_stations WHERE id = ANY($1)", ids)
    return {r["id"]: dict(r) for r in rows}
