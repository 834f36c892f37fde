"""/groups: the group tree (path, level, leaf), scoped to the caller's subtree."""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import Caller, caller
from oss.clock import ms, new_id
from oss.context import pool
from oss.errors import BadRequest, Conflict, FieldError, Forbidden, json_response
from oss.fields import Fields, fields
from oss.paging import listing, page
from oss.params import json_body, oid, q_bool, q_choice, q_ints, q_oids, q_str
from oss.shape import compact, linked, pick
from oss.storage import groups
from oss.storage.operators import OPERATOR_GROUP_TYPE
from oss.validate import validated

routes = web.RouteTableDef()
COLUMNS = {"name": "name", "description": "description", "type": "type", "timezone": "timezone"}


def visible_path(path: list[str], root: str) -> list[str]:
    """Ancestors nearest first, cut at the caller's own group (what it may see)."""
    return path[: path.index(root) + 1] if root in path else []


async def group_bodies(conn: asyncpg.Connection, who: Caller, rows: list[asyncpg.Record],
                       expand: Fields) -> list[dict[str, Any]]:
    paths = {r["id"]: visible_path(list(r["path"]), who.group_id) for r in rows}
    ancestors = await linked(conn, "group", (g for p in paths.values() for g in p)) if "path" in expand else {}
    out = []
    for r in rows:
        out.append(compact({
            "id": r["id"], "name": r["name"], "nameCI": r["name"].lower(), "description": r["description"],
            "type": r["type"], "timezone": r["timezone"],
            "parentId": r["parent_id"] if r["id"] != who.group_id else None,
            "path": [pick(ancestors.get(g, {"id": g}), expand.get("path", {})) for g in paths[r["id"]]],
            "level": r["level"], "leaf": r["leaf"], "createdBy": r["created_by"],
            "creationTime": ms(r["created_at"]),
        }))
    return out


@routes.get("/v2/groups/")
async def list_groups(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups")
    pg = page(request)
    expand = fields(request, ("path",))
    wanted = groups.Filter(parent_ids=q_oids(request, "parentIds"), deep=q_bool(request, "deep", default=False),
                           name=q_str(request, "name"), types=q_ints(request, "types"))
    sort = q_choice(request, "sort", tuple(groups.SORTS), "id")
    async with pool(request).acquire() as conn:
        rows = await groups.page(conn, who.group_id, pg, wanted, sort)
        return json_response(listing(request, pg, await group_bodies(conn, who, rows, expand)))


@routes.post("/v2/groups/")
async def create_group(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups", write=True)
    body = validated(await json_body(request), "groupCreate")
    ident = new_id()
    async with pool(request).acquire() as conn:
        await _operator_type_check(conn, who, body)
        parent = await groups.scoped(conn, who.group_id, body["parentId"])
        await groups.create(conn, parent, {
            "id": ident, "name": body["name"], "description": body.get("description"), "type": body.get("type", 2),
            "timezone": body.get("timezone", "UTC"), "created_by": who.api_user_id})
    return json_response({"id": ident}, 201)


@routes.get("/v2/groups/{id}")
async def get_group(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups")
    expand = fields(request, ("path", "paths"))
    if "paths" in expand:  # the reference's name for it on this operation
        expand["path"] = {**expand.pop("paths"), **expand.get("path", {})}
    async with pool(request).acquire() as conn:
        row = await groups.scoped_view(conn, who.group_id, oid(request))
        return json_response((await group_bodies(conn, who, [row], expand))[0])


@routes.put("/v2/groups/{id}")
async def update_group(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups", write=True)
    body = validated(await json_body(request), "groupUpdate")
    async with pool(request).acquire() as conn, conn.transaction():
        await _operator_type_check(conn, who, body)
        group = await groups.scoped(conn, who.group_id, oid(request))
        await groups.edit(conn, group["id"], {COLUMNS[k]: v for k, v in body.items() if k in COLUMNS})
        if "parentId" in body and body["parentId"] != group["parent_id"]:
            await _move(conn, who, group, body["parentId"])
    return web.Response(status=204)


async def _operator_type_check(conn: asyncpg.Connection, who: Caller, body: dict[str, Any]) -> None:
    """Only an operator makes operator groups (type 0): such a group's API users manage the network (its base
    stations), so a customer giving one of its groups that type would hand itself the operator's rights."""
    if body.get("type") == OPERATOR_GROUP_TYPE and await groups.type_of(conn, who.group_id) != OPERATOR_GROUP_TYPE:
        raise Forbidden("Only API users of an operator group may create or set groups of type 0 (SO).")


async def _move(conn: asyncpg.Connection, who: Caller, group: asyncpg.Record, parent_id: str) -> None:
    """Backhaul's extension: `parentId` puts the group (and its sub-groups) under another group of the
    caller's subtree; never the caller's own group, never under itself or one of its sub-groups."""
    if group["id"] == who.group_id:
        raise Forbidden("An API user cannot move its own group.")
    parent = await groups.scoped(conn, who.group_id, parent_id)
    if parent["id"] == group["id"] or group["id"] in parent["path"]:
        raise BadRequest(FieldError("parentId", "is the group itself or one of its sub-groups"))
    stranded = await groups.stranded_devices(conn, group["id"], [parent["id"], *parent["path"]])
    if stranded:
        raise Conflict(f"Devices of the group ({', '.join(stranded)}) use device types of groups that would no "
                       "longer be above it; move or change them first.")
    await groups.move(conn, group["id"], parent)


@routes.delete("/v2/groups/{id}")
async def delete_group(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups", write=True)
    async with pool(request).acquire() as conn, conn.transaction():
        group = await groups.scoped(conn, who.group_id, oid(request))
        if group["id"] == who.group_id:
            raise Forbidden("An API user cannot delete its own group.")
        held = await groups.holdings(conn, group["id"])
        if held:
            raise Conflict(f"The group still holds {', '.join(held)}; remove them first.")
        await groups.delete(conn, group["id"])
    return web.Response(status=204)
