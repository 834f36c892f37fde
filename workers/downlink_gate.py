"""Whether a downlink may go out: the device's contract allows downlinks, its receive window does
not overlap one already granted to the device, and it has not used up its daily quota.

The contract is read from the configuration view. Windows and quota are
counted in PostgreSQL (one round trip per downlink, which a device may ask
for a few times a day), so they hold across workers and restarts; a grant is
idempotent by downlink id, so a replayed decision is not counted twice.

Contract rule: the device's contract, else its device type's, must be a
contract with `bidir`; its `max_downlink_frames` is the quota. A device with
no contract at all (a network seeded without the contract model) may receive
downlinks within the default quota (RC1: 4 a day).

Receive windows: an uplink asking for a downlink opens the device's receive
window at a fixed time after it (`DownlinkTiming`); the device listens once,
so two downlinks whose uplinks are closer than the listening time cannot both
be heard. The first granted keeps its window; the other is refused with
TOO_MANY_REQUESTS (the device asked again before its listening time ended) and
is not counted against the quota. The quota's day is the uplink's UTC day.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import asyncpg

from backhaul.configview import ConfigView
from callback_language.downlink import DownlinkTiming, InfoCode


def utc_day(epoch_s: float) -> date:
    """The UTC calendar day of an epoch time in seconds (the quota's day)."""
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).date()


class DownlinkGate:
    def __init__(self, pool: asyncpg.Pool, view: ConfigView, timing: DownlinkTiming, default_quota: int = 4) -> None:
        self.pool = pool
        self.view = view
        self.timing = timing
        self.default_quota = default_quota

    def _contract(self, device: str) -> tuple[str | None, dict | None]:
        row = self.view.devices.get(device) or {}
        contract_id = row.get("contract_id")
        if contract_id is None:
            contract_id = (self.view.device_types.get(row.get("device_type_id") or "") or {}).get("contract_id")
        return contract_id, self.view.contracts.get(contract_id or "")

    async def admit(self, downlink_id: str, device: str, uplink_ms: int) -> InfoCode | None:
        """None if the downlink of the uplink sent at `uplink_ms` may go out (and count it), else the
        refusal's infoCode."""
        contract_id, contract = self._contract(device)
        if contract_id is not None and not (contract or {}).get("bidir"):
            return InfoCode.NO_DOWNLINK_CONTRACT
        quota = contract["max_downlink_frames"] if contract else self.default_quota
        listen_ms = self.timing.listen_ms()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", device)
            if await conn.fetchval("SELECT true FROM downlink_grants WHERE id = $1", downlink_id):
                return None
            if await conn.fetchval("SELECT true FROM downlink_grants WHERE device_id = $1 "
                                   "AND uplink_time > $2::bigint - $3::bigint AND uplink_time < $2::bigint + $3::bigint "
                                   "LIMIT 1",
                                   device, uplink_ms, listen_ms):
                return InfoCode.TOO_MANY_REQUESTS
            day = utc_day(uplink_ms / 1000)
            used = await conn.fetchval("SELECT count(*) FROM downlink_grants WHERE device_id = $1 AND day = $2",
                                       device, day)
            if used >= quota:
                return InfoCode.OVERRUN_ERROR
            await conn.execute("INSERT INTO downlink_grants(id, device_id, day, uplink_time) VALUES ($1, $2, $3, $4)",
                               downlink_id, device, day, uplink_ms)
            return None
