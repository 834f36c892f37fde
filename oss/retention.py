"""Message history retention: messages, their callback attempts and events older than N days go."""
from __future__ import annotations

import asyncio
import logging

import asyncpg

from backhaul.failures import is_infrastructure
from oss.clock import now_ms
from oss.storage import messages, registrations

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


async def purge_old_messages(pool: asyncpg.Pool, days: int) -> dict[str, int]:
    """Delete history older than `days` days, in batches; returns rows deleted per table."""
    return await messages.delete_older_than(pool, now_ms() - days * DAY_MS)


async def retention_loop(pool: asyncpg.Pool, days: int, every_s: float = 3600.0) -> None:
    """Once an hour: purge history older than `days` days (`days` <= 0 keeps it) and the rows
    that reached purged registrations after their purge."""
    while True:
        try:
            if days > 0:
                deleted = await purge_old_messages(pool, days)
                log.info("history purged", extra={"deleted": deleted, "days": days})
            async with pool.acquire() as conn:
                late = await registrations.purge_late_rows(conn)
            if late:
                log.info("late rows of purged registrations deleted", extra={"deleted": late})
        except Exception as exc:
            if not (is_infrastructure(exc) or isinstance(exc, asyncpg.PostgresError)):
                raise
            log.exception("history purge failed: trying again in an hour")
        await asyncio.sleep(every_s)
