"""A device's consumption: its uplink messages and the downlinks transmitted to it, per UTC day.

Uplinks are the stored messages of its current registration; downlinks are its ACKNOWLEDGE events
that say a station transmitted one (`downlinkAck`, written when the station reports it sent).
"""
from __future__ import annotations

from oss.storage.sql import Executor

DAY_MS = 86_400_000


async def per_day(db: Executor, registration_id: int, since: int, before: int) -> dict[int, tuple[int, int]]:
    """(uplinks, downlinks) by day number (epoch ms // DAY_MS) from `since` (included) to `before` (excluded)."""
    rows = await db.fetch(
        f"SELECT day, count(*) FILTER (WHERE up) AS uplinks, count(*) FILTER (WHERE NOT up) AS downlinks FROM ("
        f" SELECT time / {DAY_MS} AS day, true AS up FROM messages"
        f" WHERE registration_id = $1 AND time >= $2 AND time < $3"
        f" UNION ALL SELECT time / {DAY_MS}, false FROM device_events"
        f" WHERE registration_id = $1 AND type = 'ACKNOWLEDGE' AND time >= $2 AND time < $3"
        f" AND (body->>'downlinkAck')::boolean) counted GROUP BY day",
        registration_id, since, before)
    return {r["day"]: (r["uplinks"], r["downlinks"]) for r in rows}
