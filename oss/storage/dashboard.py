"""The console's home page figures: counts, traffic and trouble in one group's subtree.

Console-only reads (the API has no such aggregate): every query takes the session's root group as $1 and
keeps to its subtree with `oss.storage.scope`, like every API query. Messages and undelivered callbacks are
those of the devices' current registrations (what the API shows of each device), read through the indexes
`messages_registration_time_idx` and `undelivered_group_idx`.
"""
from __future__ import annotations

import asyncpg

from oss.storage.devices import live_token
from oss.storage.registrations import visible
from oss.storage.scope import in_subtree, subtree
from oss.storage.sql import Executor
from oss.storage.users import VISIBLE as USER_VISIBLE

HOUR_MS = 3_600_000
# Devices of the subtree with the registration their history is read through.
CURRENT = f"SELECT d.registration_id FROM devices d WHERE {in_subtree('d.group_id', '$1')}"


async def counts(db: Executor, root: str, since: int) -> asyncpg.Record:
    """devices, device_types, users of `root`'s subtree, and messages of its devices from `since` (ms)."""
    return await db.fetchrow(
        f"""SELECT (SELECT count(*) FROM devices d WHERE {in_subtree('d.group_id', '$1')}) AS devices,
                   (SELECT count(*) FROM device_types t WHERE {in_subtree('t.group_id', '$1')}) AS device_types,
                   (SELECT count(*) FROM users u WHERE {USER_VISIBLE}) AS users,
                   (SELECT count(*) FROM messages m WHERE m.registration_id IN ({CURRENT}) AND m.time >= $2)
                       AS messages""", root, since)


async def messages_per_hour(db: Executor, root: str, since: int) -> dict[int, int]:
    """Messages of the subtree's devices from `since`, by hour (the hour's start in epoch ms)."""
    rows = await db.fetch(
        f"""SELECT (m.time / {HOUR_MS}) * {HOUR_MS} AS hour, count(*) AS n FROM messages m
            WHERE m.registration_id IN ({CURRENT}) AND m.time >= $2 GROUP BY 1""", root, since)
    return {int(r["hour"]): int(r["n"]) for r in rows}


async def failing_callbacks(db: Executor, root: str, since: int, limit: int) -> list[asyncpg.Record]:
    """Callbacks with undelivered deliveries from `since` in the subtree: callback_id, device_type_id,
    device type name, how many, the latest time and message; most failures first."""
    return await db.fetch(
        f"""SELECT u.callback_id, u.device_type_id, t.name AS device_type_name, count(*) AS failures,
                   max(u.time) AS last_time, (array_agg(u.message ORDER BY u.time DESC))[1] AS last_message
            FROM undelivered_callbacks u LEFT JOIN device_types t ON t.id = u.device_type_id
            WHERE u.group_id IN {subtree('$1')} AND u.time >= $2 AND {visible('u')}
            GROUP BY u.callback_id, u.device_type_id, t.name ORDER BY count(*) DESC, u.callback_id LIMIT $3""",
        root, since, limit)


async def devices_in_error(db: Executor, root: str, now: int, limit: int) -> list[asyncpg.Record]:
    """Devices of the subtree holding a live token whose communication state is KO (3): id, name,
    last_com; the longest silent first."""
    return await db.fetch(
        f"""SELECT d.id, d.name, s.last_com FROM devices d
            JOIN device_status s ON s.device_id = d.id AND s.registration_id = d.registration_id
            WHERE {in_subtree('d.group_id', '$1')} AND s.com_state = 3 AND {live_token('d', '$2')}
            ORDER BY s.last_com NULLS FIRST, d.id LIMIT $3""", root, now, limit)
