"""Message history: messages, the attempts to deliver them, deliveries waiting for a retry, and retention."""
from __future__ import annotations

import asyncpg

from oss.storage.registrations import visible
from oss.storage.sql import CursorPage, Executor, NewestFirst, Page, Where, Window, select_newest

# What retention deletes once it is older than the kept days (every table has a `time` in epoch ms).
HISTORY_BY_TIME = ("messages", "callback_attempts", "undelivered_callbacks", "device_events", "message_downlinks")
DELETE_BATCH = 10_000
NEWEST = NewestFirst(key="id")


async def page_of_registration(db: Executor, registration_id: int, pg: Page, window: Window) -> CursorPage:
    """A device's messages (its current registration), newest first."""
    where = Where(registration_id)
    where.add("registration_id = $1")
    where.within("time", window)
    return await select_newest(db, "SELECT * FROM messages", where, NEWEST, pg)


async def page_of_device_type(db: Executor, device_type_id: str, pg: Page, window: Window) -> CursorPage:
    """The messages of a device type's devices (purged registrations left out), newest first."""
    where = Where(device_type_id)
    where.add("device_type_id = $1")
    where.add(visible())
    where.within("time", window)
    return await select_newest(db, "SELECT * FROM messages", where, NEWEST, pg)


async def locations(db: Executor, registration_id: int, pg: Page, window: Window, *,
                    with_oob: bool) -> CursorPage:
    """`time` and `computed_location` of a device's located messages (`with_oob`: service frames too)."""
    where = Where(registration_id)
    where.add("registration_id = $1")
    where.add("computed_location IS NOT NULL")
    where.within("time", window)
    if not with_oob:
        where.add("NOT oob")
    return await select_newest(db, "SELECT id, time, computed_location FROM messages", where, NEWEST, pg)


async def counts(db: Executor, registration_id: int, *, day: int, week: int, month: int) -> asyncpg.Record:
    """How many messages a device sent since each of three times (epoch ms): `day`, `week`, `month`."""
    return await db.fetchrow(
        "SELECT count(*) FILTER (WHERE time >= $2) AS day, count(*) FILTER (WHERE time >= $3) AS week, "
        "count(*) AS month FROM messages WHERE registration_id = $1 AND time >= $4",
        registration_id, day, week, month)


async def attempts(db: Executor, message_ids: list[str], registration_ids: list[int]) -> list[asyncpg.Record]:
    """The delivery attempts of these messages, oldest first."""
    return await db.fetch("SELECT message_id, callback_id, status, info, time FROM callback_attempts "
                          "WHERE message_id = ANY($1) AND registration_id = ANY($2) ORDER BY time, attempt",
                          message_ids, registration_ids)


async def waiting(db: Executor, message_ids: list[str], registration_ids: list[int]) -> list[asyncpg.Record]:
    """The deliveries of these messages held in the retry store with a reason, oldest first."""
    return await db.fetch("SELECT message_id, callback_id, info, waiting_since FROM delivery_retries "
                          "WHERE message_id = ANY($1) AND registration_id = ANY($2) AND info IS NOT NULL "
                          "ORDER BY waiting_since, delivery_id", message_ids, registration_ids)


async def delete_older_than(db: Executor, cutoff: int) -> dict[str, int]:
    """Delete history from before `cutoff` (epoch ms), in batches; rows deleted per table."""
    deleted = dict.fromkeys(HISTORY_BY_TIME, 0)
    for table in HISTORY_BY_TIME:
        while True:
            status = await db.execute(f"DELETE FROM {table} WHERE ctid IN "
                                      f"(SELECT ctid FROM {table} WHERE time < $1 LIMIT {DELETE_BATCH})", cutoff)
            count = int(status.rsplit(" ", 1)[1])
            deleted[table] += count
            if count < DELETE_BATCH:
                break
    return deleted
