"""Message history: device and device-type messages (with per-callback status), metrics, locations.

Every message anywhere in the API is rendered by one function, `message_body`,
in the shape clients of the live service decode (README "API v2
compatibility"): `device {id, name}`, `time`, `data`, `seqNumber`, `nbFrames`,
`lqi`, `ackRequired`, `computedLocation` when the message was located,
`rinfos[]` (`baseStation {id, name}`, `rssi`, `snr`, `lat`, `lng` as decimal
strings with two decimals, `freq`, `rep`, `repetitions`), `cbStatus`, and
`downlinkAnswerStatus` once a downlink was sent in answer.

The pipeline stores one row per message, its receptions in `rinfos` and every
delivery attempt in `callback_attempts`. Attempts belong to the message, not to
a station, so they are listed under the first reception's `cbStatus`
(`cbDef` is the callback id), oldest first: `{status, info, cbDef, time}` as
the reference has it, `time` being when the request was sent and `info`
"success" for a 2xx answer without a text of its own.

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

from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import caller
from oss.clock import now_ms
from oss.context import pool
from oss.downlink_answers import downlink_answer_status
from oss.errors import json_response
from oss.fields import Fields, fields
from oss.paging import listing, time_page
from oss.params import device_id, oid, q_bool, q_list
from oss.shape import compact, decimal_string
from oss.storage import base_stations, device_events, device_types, devices, downlinks, messages

routes = web.RouteTableDef()
EXPANDABLE = ("oob", "ackRequired", "device", "rinfos", "downlinkAnswerStatus")
DAY = 86_400_000
LQI_NA = 4  # until the message's window closes, its link quality is not known
LOCATION_KEYS = ("lat", "lng", "radius", "source")


def station_of(raw: Mapping[str, Any]) -> str | None:
    """The station id of a stored reception: an id, a `{"id": ...}` or nothing (JSON)."""
    station: Any = raw.get("baseStation") or raw.get("station")
    if isinstance(station, dict):
        station = station.get("id")
    return station if isinstance(station, str) else None


def base_station(station: str | None, stations: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`{id, name}` of a station (the name left out for a station no longer registered)."""
    return compact({"id": station, "name": stations.get(station or "", {}).get("name")})


def rinfo_body(raw: Mapping[str, Any], stations: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One station's reception. Per-repetition radio values are not kept: `repetitions` has one
    entry per repetition heard, none of them repeated (Backhaul has no repeaters)."""
    station = station_of(raw)
    known = stations.get(station or "", {})
    rep = raw.get("rep", 1)
    return compact({
        "baseStation": base_station(station, stations), "rssi": decimal_string(raw.get("rssi")),
        "snr": decimal_string(raw.get("snr")), "freq": raw.get("freq"),
        "lat": decimal_string(raw.get("lat", known.get("lat"))), "lng": decimal_string(raw.get("lng", known.get("lng"))),
        "rep": rep, "repetitions": [{"repeated": False} for _ in range(rep if isinstance(rep, int) else 0)],
    })


def cb_status_entry(attempt: Mapping[str, Any]) -> dict[str, Any]:
    """One attempt (or a wait) in `cbStatus`: `{status, info, cbDef, time}`."""
    status, info = attempt.get("status"), attempt.get("info")
    if info is None and status is not None and 200 <= status < 300:
        info = "success"
    return compact({"status": status, "info": info, "cbDef": attempt["callback_id"], "time": attempt["time"]})


def located(location: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """`computedLocation` when the message was located (`{lat, lng, radius, source}`), else left out."""
    if not location or location.get("lat") is None or location.get("lng") is None:
        return None
    return [{k: location[k] for k in LOCATION_KEYS if location.get(k) is not None}]


def message_body(row: Mapping[str, Any], *, cb_status: list[dict[str, Any]], device_name: str | None,
                 stations: Mapping[str, Mapping[str, Any]], expand: Fields,
                 downlink: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A message, as every list of messages shows it (the one serialiser: see the module's docstring).

    `row` is a `messages` row; `cb_status` its attempts (`cb_status_entry`), listed under the first
    reception; `device_name` the device's (its id when it has none); `stations` the receiving stations
    by id; `expand` the `fields=` asked for (`oob` shows the out-of-band flag); `downlink` the message's
    `message_downlinks` row, if it has one (`oss.downlink_answers`)."""
    rinfos = [rinfo_body(raw, stations) for raw in row["rinfos"]] or [{}]
    rinfos[0]["cbStatus"] = cb_status
    return compact({
        "device": {"id": row["device_id"], "name": device_name or row["device_id"]},
        "time": row["time"], "data": row["data"], "seqNumber": row["seq_number"], "nbFrames": row["nb_frames"],
        "lqi": row["lqi"] if row["lqi"] is not None else LQI_NA, "ackRequired": row["ack_required"],
        "computedLocation": located(row["computed_location"]), "rinfos": rinfos,
        "downlinkAnswerStatus": downlink_answer_status(downlink, stations, expand.get("downlinkAnswerStatus", {})),
        "oob": row["oob"] if "oob" in expand else None,
    })


async def message_bodies(conn: asyncpg.Connection, rows: list[asyncpg.Record], expand: Fields) -> list[dict]:
    """`message_body` of each row, with what it needs read in one query each."""
    message_ids, registration_ids = [r["id"] for r in rows], list({r["registration_id"] for r in rows})
    attempts: dict[str, list[dict[str, Any]]] = {}
    for a in await messages.attempts(conn, message_ids, registration_ids):
        attempts.setdefault(a["message_id"], []).append(cb_status_entry(a))
    for w in await messages.waiting(conn, message_ids, registration_ids):
        attempts.setdefault(w["message_id"], []).append(cb_status_entry(
            {"info": w["info"], "callback_id": w["callback_id"], "time": w["waiting_since"]}))
    station_ids = {station_of(raw) for r in rows for raw in r["rinfos"]}
    answers = await downlinks.of_messages(conn, message_ids)
    downlink_stations = {a["station"] for a in answers.values()}
    stations = await base_stations.by_ids(conn, [s for s in station_ids | downlink_stations if isinstance(s, str)])
    names = await devices.names(conn, list({r["device_id"] for r in rows}))
    return [message_body(r, cb_status=attempts.get(r["id"], []), device_name=names.get(r["device_id"]),
                         stations=stations, expand=expand, downlink=answers.get(r["id"])) for r in rows]


@routes.get("/v2/devices/{id}/messages")
async def device_messages(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("messages")
    (pg, during), expand = time_page(request), fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        device = await devices.scoped(conn, who.group_id, device_id(request))
        found = await messages.page_of_registration(conn, device["registration_id"], pg, during)
        return json_response(listing(request, pg, await message_bodies(conn, found.rows, expand), after=found.after))


@routes.get("/v2/device-types/{id}/messages")
async def device_type_messages(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("messages")
    (pg, during), expand = time_page(request), fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        device_type = await device_types.scoped(conn, who.group_id, oid(request))
        found = await messages.page_of_device_type(conn, device_type["id"], pg, during)
        return json_response(listing(request, pg, await message_bodies(conn, found.rows, expand), after=found.after))


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
    pg, during = time_page(request)
    with_oob = q_bool(request, "oob", default=False)
    async with pool(request).acquire() as conn:
        device = await devices.scoped(conn, who.group_id, device_id(request))
        found = await messages.locations(conn, device["registration_id"], pg, during, with_oob=with_oob)
    items = []
    for r in found.rows:
        loc = r["computed_location"]
        items.append(compact({"lat": loc.get("lat"), "lng": loc.get("lng"), "radius": loc.get("radius"),
                              "source": loc.get("source"), "time": r["time"], "valid": loc.get("status") == 1}))
    return json_response(listing(request, pg, items, after=found.after))


@routes.get("/v2/devices/{id}/events")
async def device_event_list(request: web.Request) -> web.Response:
    """Backhaul extension: the device's events, newest first (`type`: a comma list of types to keep).
    Each is `{id, type, time, ...}` with the fields of its type (schemas/device_events.py)."""
    who = caller(request)
    who.require("messages")
    pg, during = time_page(request)
    types = [t.upper() for t in q_list(request, "type")]
    async with pool(request).acquire() as conn:
        device = await devices.scoped(conn, who.group_id, device_id(request))
        found = await device_events.page_of_registration(conn, device["registration_id"], pg, during, types)
    items = [event_body(r) for r in found.rows]
    return json_response(listing(request, pg, items, after=found.after))


HEAD_FIELDS = ("device", "deviceTypeId", "groupId", "registrationId")


def event_body(row: Mapping[str, Any]) -> dict[str, Any]:
    """One device event: `id`, `type`, `time`, then its type's fields (the internal head left out)."""
    body = {k: v for k, v in dict(row["body"] or {}).items() if k not in HEAD_FIELDS}
    return {**body, "id": row["id"], "type": row["type"], "time": row["time"]}
