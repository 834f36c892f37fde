"""callbacks-not-delivered: failures whose retries are exhausted, by device, device type, callback or group."""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import caller
from oss.callbacks import scoped_callback
from oss.context import pool
from oss.device_types import scoped_device_type
from oss.devices import scoped_device
from oss.errors import json_response
from oss.paging import listing, page, window
from oss.params import device_id, oid
from oss.registrations import visible
from oss.scope import group_in_scope, subtree
from oss.shape import compact

routes = web.RouteTableDef()
MEDIUM = ("url", "method", "headers", "body", "contentType", "subject", "message", "error")


def undelivered_body(r: asyncpg.Record, *, group_shape: bool = False) -> dict[str, Any]:
    callback = r["callback"] if isinstance(r["callback"], dict) else {}
    body = {
        "deviceId": r["device_id"], "deviceTypeId": r["device_type_id"], "time": r["time"], "data": r["data"],
        "snr": None if r["snr"] is None else str(r["snr"]), "status": str(r["status"]), "message": r["message"],
        "callback": compact({k: callback.get(k) for k in MEDIUM}), "parameters": r["parameters"],
        "callbackId": r["callback_id"],
    }
    if group_shape:
        body["device"], body["deviceType"] = body.pop("deviceId"), body.pop("deviceTypeId")
    return compact(body)


async def _list(request: web.Request, conn: asyncpg.Connection, where: str, *args: Any,
                group_shape: bool = False) -> web.Response:
    pg = page(request)
    since, before = window(request)
    n = len(args)
    rows = await conn.fetch(
        f"SELECT * FROM undelivered_callbacks WHERE {where} AND (${n + 1}::bigint IS NULL OR time >= ${n + 1}) "
        f"AND (${n + 2}::bigint IS NULL OR time < ${n + 2}) ORDER BY time DESC, delivery_id "
        f"LIMIT {pg.fetch} OFFSET {pg.offset}", *args, since, before)
    return json_response(listing(request, pg, [undelivered_body(r, group_shape=group_shape) for r in rows]))


@routes.get("/v2/devices/{id}/callbacks-not-delivered")
async def for_device(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("callbacks")
    async with pool(request).acquire() as conn:
        device = await scoped_device(conn, who, device_id(request))
        return await _list(request, conn, "registration_id = $1", device["registration_id"])


@routes.get("/v2/device-types/{id}/callbacks-not-delivered")
async def for_device_type(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("callbacks")
    async with pool(request).acquire() as conn:
        device_type = await scoped_device_type(conn, who, oid(request))
        return await _list(request, conn, f"device_type_id = $1 AND {visible()}", device_type["id"])


@routes.get("/v2/device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered")
async def for_callback(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("callbacks")
    async with pool(request).acquire() as conn:
        callback = await scoped_callback(conn, who, request)
        return await _list(request, conn, f"callback_id = $1 AND {visible()}", callback["id"])


@routes.get("/v2/groups/{id}/callbacks-not-delivered")
async def for_group(request: web.Request) -> web.Response:
    """Failures of every device in the group and its sub-groups."""
    who = caller(request)
    who.require("callbacks")
    async with pool(request).acquire() as conn:
        group = await group_in_scope(conn, who.group_id, oid(request))
        return await _list(request, conn, f"group_id IN {subtree('$1')} AND {visible()}", group["id"],
                           group_shape=True)
