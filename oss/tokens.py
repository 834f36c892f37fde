"""Tokens: what lets a device use the network, taken from a contract (order line).

Rules (behaviour reference, section 2):
- a device takes a token from its device type's contract when it is created
  activable; `maxTokens` 0 means unlimited; `tokenDuration` months, 0 = unlimited;
- a token whose end has passed reads as OFF_CONTRACT (state 1);
- transfer to a device type on the same contract keeps the token; to another
  contract of the same order moves it (its end is kept); to another order loses
  it, and the device takes a new token on the new contract if it is activable.
`token_state` -1 in the database means the device holds no token.
"""
from __future__ import annotations

import calendar
from datetime import datetime, timezone
from typing import Any

import asyncpg

from oss.storage import contracts, devices

NO_TOKEN = -1
OK, OFF_CONTRACT = 0, 1
DEVICE_OK, DEVICE_OFF_CONTRACT, DEVICE_NOT_ACTIVABLE = 0, 2, 7


def holds_live_token(device: asyncpg.Record | dict[str, Any], now: int) -> bool:
    """The device holds a token that has not ended at `now` (`oss.storage.devices.live_token` in SQL)."""
    return device["token_state"] == OK and (device["token_end"] is None or device["token_end"] > now)


def token_end(start_ms: int, months: int) -> int | None:
    if months <= 0:
        return None
    start = datetime.fromtimestamp(start_ms / 1000, tz=timezone.utc)
    month = start.month - 1 + months
    year, month = start.year + month // 12, month % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp() * 1000)


def token_body(row: asyncpg.Record | dict[str, Any], now: int) -> dict[str, Any] | None:
    if row["token_state"] == NO_TOKEN:
        return None
    state = row["token_state"]
    if state == OK and row["token_end"] is not None and row["token_end"] <= now:
        state = OFF_CONTRACT
    body: dict[str, Any] = {"state": state}
    if row["token_end"] is not None:
        body["end"] = row["token_end"]
    return body


def device_state(row: asyncpg.Record | dict[str, Any], now: int) -> int:
    """The device state, with an expired token read as OFF_CONTRACT."""
    token = token_body(row, now)
    if row["state"] == DEVICE_OK and token is not None and token["state"] == OFF_CONTRACT:
        return DEVICE_OFF_CONTRACT
    return row["state"]


async def take_tokens(conn: asyncpg.Connection, contract_id: str, wanted: int, now: int) -> tuple[int, str | None]:
    """Reserve up to `wanted` tokens (inside the caller's transaction).

    Returns how many were granted and, when fewer than asked, why.
    """
    contract = await contracts.get(conn, contract_id, lock=True)
    if contract is None:
        return 0, f"contract {contract_id} does not exist"
    if contract["start_time"] > now:
        return 0, "the contract has not started yet"
    if contract["activation_end_time"] and contract["activation_end_time"] <= now:
        return 0, "the contract's activation period has ended"
    granted = wanted
    if contract["max_tokens"] > 0:
        used = await devices.count_live_tokens(conn, contract_id, now)
        granted = max(0, min(wanted, contract["max_tokens"] - used))
    if granted:
        await contracts.count_taken(conn, contract_id, granted)
    reason = None if granted == wanted else f"no token left on contract {contract['name']} (maxTokens " \
                                            f"{contract['max_tokens']})"
    return granted, reason


def transfer_kind(old: asyncpg.Record | None, new: asyncpg.Record) -> str:
    """`keep`, `move` or `new` for a device moving from contract `old` to `new`."""
    if old is not None and old["id"] == new["id"]:
        return "keep"
    if old is not None and old["order_id"] == new["order_id"]:
        return "move"
    return "new"
