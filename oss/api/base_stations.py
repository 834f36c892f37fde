"""/base-stations: the operator's registry of base stations (Backhaul: the reference has no such paths).

A station is known by its radio id (4 hexadecimal digits, as in the frames it relays). Only an
operator manages them: the caller needs `base-stations:read` (or `:write`), and its own group must
be an operator group (type 0, SO); a customer is refused (403) whatever its profiles. An operator
sees the stations of its groups and those of no group (the network's, from a file import). Every
change moves `oss.storage.base_stations.coverage_version`, so coverage caches are rebuilt.
"""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import Caller, caller
from oss.clock import ms
from oss.context import pool
from oss.errors import BadRequest, Conflict, FieldError, Forbidden, json_response
from oss.paging import listing, page
from oss.params import json_body, q_list, q_str
from oss.shape import compact
from oss.storage import base_stations, groups
from oss.storage.operators import OPERATOR_GROUP_TYPE
from oss.validate import validated
from radio.station_rows import STATES, STATION_ID

routes = web.RouteTableDef()
RESOURCE = "base-stations"
# API property -> column (`position` is split into lat and lng).
COLUMNS = {"name": "name", "antennaHeight": "antenna_height_m", "antennaGain": "antenna_gain_dbi",
           "cableLoss": "cable_loss_db", "environment": "environment", "state": "state"}


def station_body(r: asyncpg.Record) -> dict[str, Any]:
    """A station as the API shows it (schema `baseStation`)."""
    return compact({
        "id": r["id"], "name": r["name"], "position": {"lat": r["lat"], "lng": r["lng"]},
        "antennaHeight": r["antenna_height_m"], "antennaGain": r["antenna_gain_dbi"], "cableLoss": r["cable_loss_db"],
        "environment": r["environment"], "state": r["state"], "creationTime": ms(r["created_at"]),
        "createdBy": r["created_by"], "lastEditionTime": ms(r["updated_at"]), "lastEditedBy": r["last_edited_by"],
    })


async def operator(conn: asyncpg.Connection, request: web.Request, *, write: bool = False) -> Caller:
    """The caller, when it holds the right and belongs to an operator group; else 403."""
    who = caller(request)
    who.require(RESOURCE, write)
    if await groups.type_of(conn, who.group_id) != OPERATOR_GROUP_TYPE:
        raise Forbidden("Base stations are the operator's: only API users of an operator group (type 0) may "
                        "read or change them.")
    return who


def station_id(request: web.Request) -> str:
    value = request.match_info["id"]
    if not STATION_ID.fullmatch(value):
        raise BadRequest(FieldError("id", "must be 4 hexadecimal digits", "path"))
    return value.upper()


def columns_of(body: dict[str, Any]) -> dict[str, Any]:
    """The columns a create or update body sets."""
    out = {COLUMNS[k]: v for k, v in body.items() if k in COLUMNS}
    if "position" in body:
        out["lat"], out["lng"] = body["position"]["lat"], body["position"]["lng"]
    return out


@routes.get("/v2/base-stations/")
async def list_stations(request: web.Request) -> web.Response:
    pg = page(request)
    states = q_list(request, "state")
    bad = [s for s in states if s not in STATES]
    if bad:
        raise BadRequest(FieldError("state", f"{', '.join(bad)}: not one of {', '.join(STATES)}", "query"))
    wanted = base_stations.Filter(states=states, name=q_str(request, "name", max_length=100))
    async with pool(request).acquire() as conn:
        who = await operator(conn, request)
        rows = await base_stations.page(conn, who.group_id, pg, wanted)
    return json_response(listing(request, pg, [station_body(r) for r in rows]))


@routes.get("/v2/base-stations/{id}")
async def get_station(request: web.Request) -> web.Response:
    ident = station_id(request)
    async with pool(request).acquire() as conn:
        who = await operator(conn, request)
        row = await base_stations.scoped(conn, who.group_id, ident)
    return json_response(station_body(row))


@routes.post("/v2/base-stations/")
async def create_station(request: web.Request) -> web.Response:
    async with pool(request).acquire() as conn:
        who = await operator(conn, request, write=True)
        body = validated(await json_body(request), "baseStationCreate")
        ident = body["id"].upper()
        async with conn.transaction():
            if await base_stations.exists(conn, ident):
                raise Conflict(f"Base station {ident} already exists.")
            await base_stations.create(conn, {"id": ident, **columns_of(body), "group_id": who.group_id,
                                              "created_by": who.api_user_id, "last_edited_by": who.api_user_id})
    return json_response({"id": ident}, 201)


@routes.put("/v2/base-stations/{id}")
async def update_station(request: web.Request) -> web.Response:
    """A partial update: what is left out is kept."""
    ident = station_id(request)
    async with pool(request).acquire() as conn:
        who = await operator(conn, request, write=True)
        body = validated(await json_body(request), "baseStationUpdate")
        async with conn.transaction():
            row = await base_stations.scoped(conn, who.group_id, ident)
            await base_stations.edit(conn, row["id"], columns_of(body), edited_by=who.api_user_id)
    return web.Response(status=204)


@routes.delete("/v2/base-stations/{id}")
async def delete_station(request: web.Request) -> web.Response:
    """Delete a station nothing was stored from; one that was heard is kept (409): disable it instead."""
    ident = station_id(request)
    async with pool(request).acquire() as conn:
        who = await operator(conn, request, write=True)
        async with conn.transaction():
            row = await base_stations.scoped(conn, who.group_id, ident)
            if await base_stations.heard(conn, row["id"]):
                raise Conflict(f"Base station {row['id']} relayed stored messages or downlinks: it cannot be "
                               "deleted while they are kept; set its state to disabled instead.")
            await base_stations.delete(conn, row["id"])
    return web.Response(status=204)
