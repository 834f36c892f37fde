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
from oss.downlink_answers import downlink_answer_status
from oss.errors import json_response
from oss.fields import Fields, fields
from oss.paging import listing, page, window
from oss.params import device_id, oid, q_bool
from oss.shape import compact
from oss.storage import base_stations, device_types, devices, downlinks, messages

routes = web.RouteTableDef()
EXPANDABLE = ("oob", "ackRequired", "device", "rinfos", "downlinkAnswerStatus")
DAY = 86_400_000


def _rinfo(raw: dict[str, Any], wanted: Fields, stations: dict[str, dict]) -> dict[str, Any]:
    station: Any = raw.get("baseStation") or raw.get("station")  # an id, a {"id": ...} or nothing (JSON)
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
    message_ids, registration_ids = [r["id"] for r in rows], list({r["registration_id"] for r in rows})
    attempts: dict[str, list[dict[str, Any]]] = {}
    for a in await messages.attempts(conn, message_ids, registration_ids):
        attempts.setdefault(a["message_id"], []).append(compact(
            {"status": a["status"], "info": a["info"], "cbDef": a["callback_id"], "time": a["time"]}))
    for w in await messages.waiting(conn, message_ids, registration_ids):
        attempts.setdefault(w["message_id"], []).append(compact(
            {"info": w["info"], "cbDef": w["callback_id"], "time": w["waiting_since"]}))
    answers = await downlinks.of_messages(conn, message_ids)
    station_ids = {(ri.get("baseStation") or ri.get("station")) for r in rows for ri in r["rinfos"]}
    station_ids |= {a["station"] for a in answers.values()}
    stations = await base_stations.by_ids(conn, [s for s in station_ids if isinstance(s, str)])
    names = {}
    if "name" in expand.get("device", {}):
        names = await devices.names(conn, list({r["device_id"] for r in rows}))
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
            "downlinkAnswerStatus": downlink_answer_status(answers.get(r["id"]), stations,
                                                           expand.get("downlinkAnswerStatus", {})),
        }))
    return out


@routes.get("/v2/devices/{id}/messages")
async def device_messages(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("messages")
    pg, expand = page(request), fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        device = await devices.scoped(conn, who.group_id, device_id(request))
        rows = await messages.page_of_registration(conn, device["registration_id"], pg, window(request))
        return json_response(listing(request, pg, await message_bodies(conn, rows, expand)))


@routes.get("/v2/device-types/{id}/messages")
async def device_type_messages(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("messages")
    pg, expand = page(request), fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        device_type = await device_types.scoped(conn, who.group_id, oid(request))
        rows = await messages.page_of_device_type(conn, device_type["id"], pg, window(request))
        return json_response(listing(request, pg, await message_bodies(conn, rows, expand)))


@routes.get("/v2/devices/{id}/messages/metric")
async def message_metric(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("messages")
    now = now_ms()
    async with pool(request).acquire() as conn:
        device = await devices.scoped(conn, who.group_id, device_id(request))
        row = await messages.counts(conn, device["registration_id"], day=now - DAY, week=now - 7 * DAY,
                                    month=now - 30 * DAY)
    return json_response({"lastDay": row["day"], "lastWeek": row["week"], "lastMonth": row["month"]})


@routes.get("/v2/devices/{id}/locations")
async def device_locations(request: web.Request) -> web.Response:
    """Computed locations of the device's messages, newest first (`valid` when status is 1)."""
    who = caller(request)
    who.require("messages")
    pg = page(request)
    during = window(request)
    with_oob = q_bool(request, "oob", default=False)
    async with pool(request).acquire() as conn:
        device = await devices.scoped(conn, who.group_id, device_id(request))
        rows = await messages.locations(conn, device["registration_id"], pg, during, with_oob=with_oob)
    items = []
    for r in rows:
        loc = r["computed_location"]
        items.append(compact({"lat": loc.get("lat"), "lng": loc.get("lng"), "radius": loc.get("radius"),
                              "source": loc.get("source"), "time": r["time"], "valid": loc.get("status") == 1}))
    return json_response(listing(request, pg, items))
