"""Registers a simulated network in PostgreSQL: group, stations, device type, callbacks, devices.

Plain SQL on the same tables the API writes; the config outbox triggers carry
every row to the stream workers.
"""
from __future__ import annotations

import hashlib
from typing import Any

import asyncpg
import orjson

from ingest.simulator import Network


def stable_id(*parts: str) -> str:
    """A 24-hex-character id derived from names, so seeding twice updates instead of duplicating."""
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:24]


async def seed_network(conn: asyncpg.Connection, network: Network, *, name: str = "demo",
                       callbacks: list[dict[str, Any]] = (), keep_alive: int = 0,
                       payload_config: str | None = None, parent_group: str | None = None) -> dict[str, str]:
    """Create or update the rows of a simulated network; returns the ids it used."""
    group_id = stable_id(name, "group")
    type_id = stable_id(name, "device-type")
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO groups(id, name, type, parent_id, path) VALUES ($1, $2, 2, $3::text, "
            "CASE WHEN $3::text IS NULL THEN '{}'::text[] ELSE "
            "ARRAY[$3::text] || (SELECT path FROM groups WHERE id = $3::text) END) "
            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
            group_id, f"{name} network", parent_group)
        await conn.executemany(
            "INSERT INTO base_stations(id, name, lat, lng, group_id) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (id) DO UPDATE SET lat = EXCLUDED.lat, lng = EXCLUDED.lng, updated_at = now()",
            [(s.id, f"station {s.id}", s.lat, s.lng, group_id) for s in network.stations])
        await conn.execute(
            "INSERT INTO device_types(id, name, group_id, keep_alive, payload_type, payload_config) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET keep_alive = EXCLUDED.keep_alive, "
            "payload_type = EXCLUDED.payload_type, payload_config = EXCLUDED.payload_config, updated_at = now()",
            type_id, f"{name} sensors", group_id, keep_alive, 3 if payload_config else 2, payload_config)
        await conn.execute("DELETE FROM callbacks WHERE device_type_id = $1", type_id)
        for i, cb in enumerate(callbacks):
            await conn.execute(
                "INSERT INTO callbacks(id, device_type_id, callback_type, callback_subtype, channel, url, http_method, "
                "headers, body_template, content_type, line_pattern, recipient, subject, message, retry_schedule, "
                "signing_secret, enabled, downlink_hook) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8::jsonb,$9,$10,$11,$12,$13,$14,$15,$16,true,$17)",
                cb.get("id") or stable_id(name, "callback", str(i)), type_id, cb.get("callback_type", 0),
                cb.get("callback_subtype", 0), cb.get("channel", "URL"), cb.get("url"), cb.get("http_method"),
                orjson.dumps(cb.get("headers") or {}).decode(), cb.get("body_template"), cb.get("content_type"),
                cb.get("line_pattern"), cb.get("recipient"), cb.get("subject"), cb.get("message"),
                cb.get("retry_schedule"), cb.get("signing_secret"), cb.get("downlink_hook", False))
        await conn.executemany(
            "INSERT INTO devices(id, name, device_type_id, group_id, lat, lng) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (id) DO UPDATE SET device_type_id = EXCLUDED.device_type_id, updated_at = now()",
            [(d.id, f"device {d.id}", type_id, group_id, round(d.lat, 5), round(d.lng, 5)) for d in network.devices])
    return {"group": group_id, "deviceType": type_id}
