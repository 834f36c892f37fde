"""The downlinks of messages (`message_downlinks`, written by the store): what the API shows as a message's
downlinkAnswerStatus."""
from __future__ import annotations

import asyncpg

from oss.storage.sql import Executor


async def of_messages(db: Executor, message_ids: list[str]) -> dict[str, asyncpg.Record]:
    """The downlink row of each of these messages that has one, by message id."""
    rows = await db.fetch("SELECT * FROM message_downlinks WHERE message_id = ANY($1)", message_ids)
    return {r["message_id"]: r for r in rows}
