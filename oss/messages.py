"""Message history: device and device-type messages (with per-callback status), metrics, locations.

The pipeline stores one row per message, its receptions in `rinfos` and every
delivery attempt in `callback_attempts`. Attempts belong to the message, not to
a station, so they are listed under the first reception's `cbStatus`
(`cbDef` is the callback id), oldest first: `{status, info, cbDef, time}` as
the reference has it, `time` being when the request was sent.

Where we extend the reference (its entries all have an HTTP status):
- a request sent and not answered yet is listed without `status`, with
  `info` "sending: no answer yet"; one whose answer was lost to a crash of the
  delivery worker has status 600 and says so (`store.stage`);
- a delivery waiting in the retry store adds a last entry without `status`
  whose `info` starts with "waiting:" and says why (circuit open since when,
  and when it will be given up; rate limited; the next try of the schedule;
  `workers.waiting`), `time` being since when it waits. It goes away when
  the delivery is sent or given up; one given up while held is listed with
  status 600 and "not sent, retry schedule over: ...".
"""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import caller
from oss.clock import now_ms
from oss.context import pool
from oss.device_types import scoped_device_type
from oss.devices import scoped_device
from oss.errors import json_response
from oss.fields import Fields, fields
from oss.paging import Page, listing, page, window
from oss.params import device_id, oid, q_bool
from oss.registrations import visible
from oss.shape import compact

routes = web.RouteTableDef()
EXPANDABLE = ("oob", "ackRequired", "device", "rinfos", "downlinkAnswerStatus")
DAY = 86_400_000


def _rinfo(raw: dict[str, Any], wanted: Fields, stations: dict[str, dict]) -> dict[str, Any]:
    station = raw.get("baseStation") or raw.get("station")
    if isinstance(station, dict):
        station = station.get("id")
    base = {"id": station}
    if "name" in wanted.get("baseStation", {}) and station in stations:
        base["name"] = stations[station]["name"]
    known = stations.get(station, {})
    out = {"baseStation": compact(base), "rssi": raw.get("rssi"), "snr": raw.get("snr"), "freq": raw.get("freq"),
           "lat": raw.get("lat", known.get("lat")), "lng": raw.get("lng", known.get("lng"))}
    if "rep" in wanted:
        out["rep"] = raw.get("rep")
    if "repetitions" in wanted:
        out["repetitions"] = raw.get("repetitions")
    return compact(out)


async def message_bodies(conn: asyncpg.Connection, rows: list[asyncpg.Record], expand: Fields) -> list[dict]:
    attempts: dict[str, list[dict[str, Any]]] = {}
    for a in await conn.fetch("SELECT message_id, callback_id, status, info, time FROM callback_attempts "
                              "WHERE message_id = ANY($1) AND registration_id = ANY($2) ORDER BY time, attempt",
                              [r["id"] for r in rows], list({r["registration_id"] for r in rows})):
        attempts.setdefault(a["message_id"], []).append(compact(
            {"status": a["status"], "info": a["info"], "cbDef": a["callback_id"], "time": a["time"]}))
    for w in await conn.fetch("SELECT message_id, callback_id, info, waiting_since FROM delivery_retries "
                              "WHERE message_id = ANY($1) AND registration_id = ANY($2) AND info IS NOT NULL "
                              "ORDER BY waiting_since, delivery_id",
                              [r["id"] for r in rows], list({r["registration_id"] for r in rows})):
        attempts.setdefault(w["message_id"], []).append(compact(
            {"info": w["info"], "cbDef": w["callback_id"], "time": w["waiting_since"]}))
    station_ids = {(ri.get("baseStation") or ri.get("station")) for r in rows for ri in r["rinfos"]}
    stations = {s["id"]: dict(s) for s in await conn.fetch(
        "SELECT id, name, lat, lng FROM base_stations WHERE id = ANY($1)",
        [s for s in station_ids if isinstance(s, str)])}
    names = {}
    if "name" in expand.get("device", {}):
        names = {d["id"]: d["name"] for d in await conn.fetch(
            "SELECT id, name FROM devices WHERE id = ANY($1)", list({r["device_id"] for r in rows}))}
    wanted = expand.get("rinfos", {})
    out = []
    for r in rows:
        rinfos = [_rinfo(ri, wanted, stations) for ri in r["rinfos"]] or [{}]
        rinfos[0]["cbStatus"] = attempts.get(r["id"], [])
        location = r["computed_location"]
        out.append(compact({
            "device": compact({"id": r["device_id"], "name": names.get(r["device_id"])}),
            "time": r["time"], "data": r["data"], "seqNumber": r["seq_number"], "nbFrames": r["nb_frames"],
            "lqi": r["lqi"], "computedLocation": [location] if location else None, "rinfos": rinfos,
            "ackRequired": r["ack_required"] if "ackRequired" in expand else None,
            "oob": r["oob"] if "oob" in expand else None,
        }))
    return out


async def _messages(request: web.Request, conn: asyncpg.Connection, where: str, value: Any, pg: Page,
                    expand: Fields) -> dict[str, Any]:
    since, before = window(request)
    rows = await conn.fetch(
        f"SELECT * FROM messages WHERE {where} AND ($2::bigint IS NULL OR time >= $2) "
        f"AND ($3::bigint IS NULL OR time < $3) ORDER BY time DESC, id LIMIT {pg.fetch} OFFSET {pg.offset}",
        value, since, before)
    return listing(request, pg, await message_bodies(conn, rows, expand))


@routes.get("/v2/devices/{id}/messages")
async def device_messages(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("messages")
    pg, expand = page(request), fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        device = await scoped_device(conn, who, device_id(request))
        return json_response(await _messages(request, conn, "registration_id = $1", device["registration_id"],
                                             pg, expand))


@routes.get("/v2/device-types/{id}/messages")
async def device_type_messages(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("messages")
    pg, expand = page(request), fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        device_type = await scoped_device_type(conn, who, oid(request))
        return json_response(await _messages(request, conn, f"device_type_id = $1 AND {visible()}",
                                             device_type["id"], pg, expand))


@routes.get("/v2/devices/{id}/messages/metric")
async def message_metric(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("messages")
    now = now_ms()
    async with pool(request).acquire() as conn:
        device = await scoped_device(conn, who, device_id(request))
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE time >= $2) AS day, count(*) FILTER (WHERE time >= $3) AS week, "
            "count(*) AS month FROM messages WHERE registration_id = $1 AND time >= $4",
            device["registration_id"], now - DAY, now - 7 * DAY, now - 30 * DAY)
    return json_response({"lastDay": row["day"], "lastWeek": row["week"], "lastMonth": row["month"]})


@routes.get("/v2/devices/{id}/locations")
async def device_locations(request: web.Request) -> web.Response:
    """Computed locations of the device's messages, newest first (`valid` when status is 1)."""
    who = caller(request)
    who.require("messages")
    pg = page(request)
    since, before = window(request)
    with_oob = q_bool(request, "oob", default=False)
    async with pool(request).acquire() as conn:
        device = await scoped_device(conn, who, device_id(request))
        rows = await conn.fetch(
            "SELECT time, computed_location FROM messages WHERE registration_id = $1 AND computed_location IS NOT NULL "
            "AND ($2::bigint IS NULL OR time >= $2) AND ($3::bigint IS NULL OR time < $3) AND ($4 OR NOT oob) "
            f"ORDER BY time DESC, id LIMIT {pg.fetch} OFFSET {pg.offset}", device["registration_id"], since, before,
            with_oob)
    items = []
    for r in rows:
        loc = r["computed_location"]
        items.append(compact({"lat": loc.get("lat"), "lng": loc.get("lng"), "radius": loc.get("radius"),
                              "source": loc.get("source"), "time": r["time"], "valid": loc.get("status") == 1}))
    return json_response(listing(request, pg, items))
