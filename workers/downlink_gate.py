"""Whether a downlink may go out: the device's contract allows downlinks, and
the device has not used up its daily quota.

The contract is read from the configuration view. The quota is counted in
PostgreSQL (one round trip per downlink, which a device may ask for a few
times a day), so it holds across workers and restarts; a grant is idempotent
by downlink id, so a replayed decision is not counted twice.

Contract rule: the device's contract, else its device type's, must be a
contract with `bidir`; its `max_downlink_frames` is the quota. A device with
no contract at all (a network seeded without the contract model) may receive
downlinks within the default quota (RC1: 4 a day).
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import asyncpg

from backhaul.configview import ConfigView
from callback_language.downlink import InfoCode


def utc_day(epoch_s: float) -> date:
    """The UTC calendar day of an epoch time in seconds (the quota's day)."""
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).date()


class DownlinkGate:
    def __init__(self, pool: asyncpg.Pool, view: ConfigView, default_quota: int = 4) -> None:
        self.pool = pool
        self.view = view
        self.default_quota = default_quota

    def _contract(self, device: str) -> tuple[str | None, dict | None]:
        row = self.view.devices.get(device) or {}
        contract_id = row.get("contract_id")
        if contract_id is None:
            contract_id = (self.view.device_types.get(row.get("device_type_id") or "") or {}).get("contract_id")
        return contract_id, self.view.contracts.get(contract_id or "")

    async def admit(self, downlink_id: str, device: str, day: date) -> InfoCode | None:
        """None if the downlink may go out (and count it), else the refusal's infoCode."""
        contract_id, contract = self._contract(device)
        if contract_id is not None and not (contract or {}).get("bidir"):
            return InfoCode.NO_DOWNLINK_CONTRACT
        quota = contract["max_downlink_frames"] if contract else self.default_quota
        async with self.pool.acquire() as conn, conn.transaction():
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
