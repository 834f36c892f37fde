"""callbacks-not-delivered: failures whose retries are exhausted, by device, device type, callback or group."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from backhaul.replay import replay_undelivered
from oss.auth import caller
from oss.context import pool
from oss.errors import json_response
from oss.paging import listing, time_page
from oss.params import device_id, json_body, oid
from oss.shape import compact
from oss.storage import callbacks, device_types, devices, groups, undelivered
from oss.storage.sql import CursorPage, Page, Window
from oss.validate import validated

routes = web.RouteTableDef()
MEDIUM = ("url", "method", "headers", "body", "contentType", "subject", "message", "error")
# One page of a list, as the storage layer gives it for the owner's id.
Lister = Callable[[asyncpg.Connection, Any, Page, Window], Awaitable[CursorPage]]


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


async def _list(request: web.Request, conn: asyncpg.Connection, rows_of: Lister, owner: Any, *,
                group_shape: bool = False) -> web.Response:
    pg, during = time_page(request)
    found = await rows_of(conn, owner, pg, during)
    return json_response(listing(request, pg, [undelivered_body(r, group_shape=group_shape) for r in found.rows],
                                 after=found.after))


@routes.get("/v2/devices/{id}/callbacks-not-delivered")
async def for_device(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("callbacks")
    async with pool(request).acquire() as conn:
        device = await devices.scoped(conn, who.group_id, device_id(request))
        return await _list(request, conn, undelivered.of_registration, device["registration_id"])


@routes.get("/v2/device-types/{id}/callbacks-not-delivered")
async def for_device_type(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("callbacks")
    async with pool(request).acquire() as conn:
        device_type = await device_types.scoped(conn, who.group_id, oid(request))
        return await _list(request, conn, undelivered.of_device_type, device_type["id"])


@routes.get("/v2/device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered")
async def for_callback(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("callbacks")
    async with pool(request).acquire() as conn:
        device_type = await device_types.scoped(conn, who.group_id, oid(request))
        callback = await callbacks.of_scoped_device_type(conn, device_type["id"], oid(request, "callbackId"))
        return await _list(request, conn, undelivered.of_callback, callback["id"])


@routes.get("/v2/groups/{id}/callbacks-not-delivered")
async def for_group(request: web.Request) -> web.Response:
    """Failures of every device in the group and its sub-groups."""
    who = caller(request)
    who.require("callbacks")
    async with pool(request).acquire() as conn:
        group = await groups.scoped(conn, who.group_id, oid(request))
        return await _list(request, conn, undelivered.of_group, group["id"], group_shape=True)


@routes.post("/v2/device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered/replay")
async def replay_for_callback(request: web.Request) -> web.Response:
    """Backhaul extension: send this callback's undelivered callbacks again (`backhaul.replay`), those of
    `deviceId` and of `since` <= time < `before` when given; each entry is replayed once. Answers
    `{"replayed": n}`."""
    who = caller(request)
    who.require("callbacks", write=True)
    body = validated(await json_body(request), "replayUndelivered")
    async with pool(request).acquire() as conn:
        device_type = await device_types.scoped(conn, who.group_id, oid(request))
        callback = await callbacks.of_scoped_device_type(conn, device_type["id"], oid(request, "callbackId"))
    count = await replay_undelivered(device=body.get("deviceId"), callback=callback["id"], since=body.get("since"),
                                     before=body.get("before"), pool=pool(request))
    return json_response({"replayed": count})
