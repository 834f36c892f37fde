"""Device registrations: which history rows a caller may see, and what deleting or moving a device does to them.

Every history row (message, callback attempt, undelivered callback, device
event, radio status, downlink) carries the registration of the device it was made for
(`schemas/sql/005_registrations.sql`). A device's own endpoints read through
its current registration; lists by device type, callback or group skip the
registrations that were purged. Deleting a device purges its registration;
moving it to another group gives it a new one, which takes the old history
only when the operator asks for it (`keepHistory`).
"""
from __future__ import annotations

from oss.storage.sql import Executor

HISTORY_TABLES = ("messages", "callback_attempts", "undelivered_callbacks", "device_events", "device_status",
                  "message_downlinks")


def visible(alias: str = "") -> str:
    """SQL condition: the row belongs to a registration whose history has not been purged."""
    column = f"{alias}.registration_id" if alias else "registration_id"
    return (f"{column} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM device_registrations purged_r WHERE purged_r.id = {column} AND purged_r.purged)")


async def purge(db: Executor, registration_ids: list[int]) -> None:
    """Mark registrations purged and delete their history rows (rows still in flight stay hidden)."""
    if not registration_ids:
        return
    await db.execute("UPDATE device_registrations SET purged = true, ended_at = COALESCE(ended_at, now()) "
                     "WHERE id = ANY($1)", registration_ids)
    for table in HISTORY_TABLES:
        await db.execute(f"DELETE FROM {table} WHERE registration_id = ANY($1)", registration_ids)


async def register_again(db: Executor, device_id: str, old_registration: int, keep_history: bool) -> int:
    """Give a device a new registration (it moved to another group); returns its number.

    With `keep_history` the old registration's rows move to the new one (the new owner sees
    them); without, they are purged.
    """
    new = await db.fetchval("UPDATE devices SET registration_id = nextval('device_registration_seq') "
                            "WHERE id = $1 RETURNING registration_id", device_id)
    if keep_history:
        await db.execute("UPDATE device_registrations SET moved_to = $2 WHERE id = $1", old_registration, new)
        for table in HISTORY_TABLES:
            await db.execute(f"UPDATE {table} SET registration_id = $2 WHERE registration_id = $1",
                             old_registration, new)
    else:
        await purge(db, [old_registration])
    return new


async def purge_late_rows(db: Executor) -> int:
    """Delete rows that reached purged registrations after the purge (records that were in flight)."""
    deleted = 0
    for table in HISTORY_TABLES:
        status = await db.execute(
            f"DELETE FROM {table} t USING device_registrations r WHERE r.id = t.registration_id AND r.purged")
        deleted += int(status.rsplit(" ", 1)[1])
    return deleted
