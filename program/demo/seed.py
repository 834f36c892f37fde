"""Registers a simulated network in PostgreSQL: group, stations, device type, callbacks, devices, and
(for `backhaul up`) the contract its devices hold tokens of.

Plain SQL on the same tables the API writes; the config outbox triggers carry
every row to the stream workers.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from backhaul.callback_secrets import seal_callback
from simulator.network import Network


def stable_id(*parts: str) -> str:
    """A 24-hex-character id derived from names, so seeding twice updates instead of duplicating."""
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:24]


# The contract `backhaul up` gives its customer (contracts come from orders, outside API v2): the columns'
# defaults (unlimited tokens and duration, 140 uplinks and 4 downlinks a day) with downlinks allowed.
DEMO_CONTRACT: dict[str, Any] = {"bidir": True}

CALLBACK_DEFAULTS: dict[str, Any] = {"callback_type": 0, "callback_subtype": 0, "channel": "URL", "enabled": True,
                                     "downlink_hook": False}


def _insert(table: str, row: dict[str, Any], jsonb: tuple[str, ...] = ()) -> tuple[str, list[Any]]:
    columns = list(row)
    values = [orjson.dumps(row[c]).decode() if c in jsonb else row[c] for c in columns]
    params = ", ".join(f"${i}::jsonb" if c in jsonb else f"${i}" for i, c in enumerate(columns, 1))
    return f"INSERT INTO {table}({', '.join(columns)}) VALUES ({params})", values


async def seed_network(conn: asyncpg.Connection, network: Network, *, name: str = "demo",
                       callbacks: Sequence[dict[str, Any]] = (), keep_alive: int = 0,
                       payload_config: str | None = None, parent_group: str | None = None,
                       device_type: dict[str, Any] | None = None,
                       contract: dict[str, Any] | None = None, register_stations: bool = True) -> dict[str, str]:
    """Create or update the rows of a simulated network; returns the ids it used.

    `callbacks` are rows of the callbacks table (any of its columns; the id,
    type, subtype, channel, enabled and downlink_hook have defaults), with
    their secrets in clear (`url` with `user:password@`, any `headers`,
    `signing_secret`): they are sealed as the API seals them;
    `device_type` sets more columns of the device type (alert_email,
    downlink_mode, downlink_data_string, contract_id, ...);
    `contract` (columns of contract_infos, or {} for the defaults) makes a contract in the network's
    group, as an order would (API v2 has no way to make one), and puts the device type and every device
    on it: each device holds a token of it. `register_stations=False` leaves the stations to the registry
    (`backhaul up` imports them from the stations file first, with their radio parameters).
    """
    group_id = stable_id(name, "group")
    type_id = stable_id(name, "device-type")
    contract_id = stable_id(name, "contract") if contract is not None else None
    dtype = {"id": type_id, "name": f"{name} sensors", "group_id": group_id, "keep_alive": keep_alive,
             "payload_type": 3 if payload_config else 2, "payload_config": payload_config,
             **({"contract_id": contract_id} if contract_id else {}), **(device_type or {})}
    dtype_sql, dtype_values = _insert("device_types", dtype)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in dtype if c != "id")
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO groups(id, name, type, parent_id, path) VALUES ($1, $2, 2, $3::text, "
            "CASE WHEN $3::text IS NULL THEN '{}'::text[] ELSE "
            "ARRAY[$3::text] || (SELECT path FROM groups WHERE id = $3::text) END) "
            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
            group_id, f"{name} network", parent_group)
        if contract is not None:
            row = {"id": contract_id, "name": f"{name} contract", "group_id": group_id,
                   "order_id": stable_id(name, "order"), "order_name": f"{name} order",
                   "start_time": int(time.time() * 1000), "tokens_used": len(network.devices), **contract}
            sql, values = _insert("contract_infos", row, jsonb=("options",))
            kept = ", ".join(f"{c} = EXCLUDED.{c}" for c in row if c not in ("id", "start_time"))
            await conn.execute(f"{sql} ON CONFLICT (id) DO UPDATE SET {kept}, updated_at = now()", *values)
        if register_stations:
            await conn.executemany(
                "INSERT INTO base_stations(id, name, lat, lng, group_id) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (id) DO UPDATE SET lat = EXCLUDED.lat, lng = EXCLUDED.lng, updated_at = now()",
                [(s.id, f"station {s.id}", s.lat, s.lng, group_id) for s in network.stations])
        await conn.execute(f"{dtype_sql} ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()", *dtype_values)
        await conn.execute("DELETE FROM callbacks WHERE device_type_id = $1", type_id)
        for i, cb in enumerate(callbacks):
            row = {**CALLBACK_DEFAULTS, **cb, "id": cb.get("id") or stable_id(name, "callback", str(i)),
                   "device_type_id": type_id}
            row = seal_callback(row)
            sql, values = _insert("callbacks", row, jsonb=("headers", "secret_headers", "channel_settings",
                                                           "channel_secrets"))
            await conn.execute(sql, *values)
        await conn.executemany(
            "INSERT INTO devices(id, name, device_type_id, group_id, lat, lng, contract_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET "
            "device_type_id = EXCLUDED.device_type_id, "
            "contract_id = COALESCE(EXCLUDED.contract_id, devices.contract_id), updated_at = now()",
            [(d.id, f"device {d.id}", type_id, group_id, round(d.lat, 5), round(d.lng, 5), contract_id)
             for d in network.devices])
    ids = {"group": group_id, "deviceType": type_id}
    return {**ids, "contract": contract_id} if contract_id else ids
