"""Whether a downlink may go out: the device's contract allows downlinks, and
the device has not used up its daily quota.

Backed by PostgreSQL (one round trip per downlink, which a device may ask for
a few times a day): the quota holds across workers and restarts, and a grant
is idempotent by downlink id, so a replayed decision is not counted twice.

Contract rule: the device's contract, else its device type's, must be a
`contract_infos` row with `bidir`; its `max_downlink_frames` is the quota.
A device with no contract at all (a network seeded without the contract
model) may receive downlinks within the default quota (RC1: 4 a day).
"""
from __future__ import annotations

from datetime import date

import asyncpg

from workers.downlink import InfoCode

_CONTRACT = (
    "SELECT COALESCE(d.contract_id, t.contract_id) AS contract_id, c.id AS found, c.bidir, c.max_downlink_frames "
    "FROM devices d JOIN device_types t ON t.id = d.device_type_id "
    "LEFT JOIN contract_infos c ON c.id = COALESCE(d.contract_id, t.contract_id) WHERE d.id = $1")


class DownlinkGate:
    def __init__(self, pool: asyncpg.Pool, default_quota: int = 4) -> None:
        self.pool = pool
        self.default_quota = default_quota

    async def admit(self, downlink_id: str, device: str, day: date) -> InfoCode | None:
        """None if the downlink may go out (and count it), else the refusal's infoCode."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_CONTRACT, device)
            if row is not None and row["contract_id"] is not None and not row["bidir"]:
                return InfoCode.NO_DOWNLINK_CONTRACT
            quota = row["max_downlink_frames"] if row is not None and row["found"] else self.default_quota
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", device)
            if await conn.fetchval("SELECT true FROM downlink_grants WHERE id = $1", downlink_id):
                return None
            used = await conn.fetchval("SELECT count(*) FROM downlink_grants WHERE device_id = $1 AND day = $2",
                                       device, day)
            if used >= quota:
                return InfoCode.OVERRUN_ERROR
            await conn.execute("INSERT INTO downlink_grants(id, device_id, day) VALUES ($1, $2, $3)",
                               downlink_id, device, day)
            return None
