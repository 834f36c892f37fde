"""/operators: the network operators of the caller's groups, and their settings.

An operator is a group of type 0 (SO): its id is the group's. Reading one is reading that group
(`groups:read`), updating its settings writing it (`groups:write`); an operator outside the
caller's groups is not found. `GET /operators/` (the list) is Backhaul's: the reference has no
way to find an operator's id. Backhaul's stations do not read these settings: they are kept for
the clients and tools that manage them. The `fields` expansions of the reference are accepted;
`telecommunicationStandard` is always shown whole, and Backhaul has no hardware configurations,
runtimes or upgrade campaigns to add.
"""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import Caller, caller
from oss.context import pool
from oss.errors import BadRequest, FieldError, json_response
from oss.fields import fields
from oss.paging import listing, page
from oss.params import json_body, oid, q_bool
from oss.shape import compact
from oss.storage import operators
from oss.validate import validated

routes = web.RouteTableDef()
EXPANDABLE = ("hardwareConfigurations", "telecommunicationStandard", "currentRuntimes", "upgradeStatus")
COLUMNS = {"transmitterPower": "transmitter_power", "minDb": "min_db", "maxDb": "max_db", "alertTime": "alert_time",
           "requestTrackerBaseUrl": "request_tracker_base_url",
           "telecommunicationStandard": "telecommunication_standard"}


def operator_body(r: asyncpg.Record, actions: list[str] | None) -> dict[str, Any]:
    """The reference's `operatorRead`; `actions` only when the caller asked for its authorizations."""
    return compact({
        "id": r["id"], "autoCloseCampaign": r["auto_close_campaign"], "transmitterPower": r["transmitter_power"],
        "minDb": r["min_db"], "maxDb": r["max_db"], "alertTime": r["alert_time"],
        "requestTrackerBaseUrl": r["request_tracker_base_url"],
        "telecommunicationStandard": r["telecommunication_standard"],
        "antenna": {"model": r["antenna_model"]} if r["antenna_model"] else None,
        "warrantyMode": r["warranty_mode"], "networkType": r["network_type"], "actions": actions,
    })


def actions_of(request: web.Request, who: Caller) -> list[str] | None:
    """What the caller may do with an operator, when `authorizations=true` asks."""
    if not q_bool(request, "authorizations", default=False):
        return None
    return ["read", "update"] if who.can("groups", write=True) else ["read"]


@routes.get("/v2/operators/")
async def list_operators(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups")
    pg = page(request)
    fields(request, EXPANDABLE)
    actions = actions_of(request, who)
    async with pool(request).acquire() as conn:
        rows = await operators.page(conn, who.group_id, pg)
    return json_response(listing(request, pg, [operator_body(r, actions) for r in rows]))


@routes.get("/v2/operators/{id}")
async def get_operator(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups")
    fields(request, EXPANDABLE)
    actions = actions_of(request, who)
    async with pool(request).acquire() as conn:
        row = await operators.scoped(conn, who.group_id, oid(request))
    return json_response(operator_body(row, actions))


@routes.put("/v2/operators/{id}")
async def update_operator(request: web.Request) -> web.Response:
    """A partial update: what is left out is kept, `null` unsets it."""
    who = caller(request)
    who.require("groups", write=True)
    body = validated(await json_body(request), "operatorUpdate")
    changes = {COLUMNS[k]: v for k, v in body.items() if k in COLUMNS}
    if "antenna" in body:
        changes["antenna_model"] = (body["antenna"] or {}).get("model")
    async with pool(request).acquire() as conn, conn.transaction():
        row = await operators.scoped(conn, who.group_id, oid(request))
        merged = {**dict(row), **changes}
        if None not in (merged["min_db"], merged["max_db"]) and merged["min_db"] > merged["max_db"]:
            field = "minDb" if "min_db" in changes else "maxDb"
            raise BadRequest(FieldError(field, f"minDb ({merged['min_db']}) must not be above maxDb "
                                               f"({merged['max_db']})"))
        await operators.save(conn, row["id"], changes, edited_by=who.api_user_id)
    return web.Response(status=204)
