"""/groups: the group tree (path, level, leaf), scoped to the caller's subtree."""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import Caller, caller
from oss.clock import ms, new_id
from oss.context import pool
from oss.errors import Conflict, Forbidden, json_response
from oss.fields import Fields, fields
from oss.paging import listing, page
from oss.params import json_body, oid, q_bool, q_choice, q_ints, q_oids, q_str
from oss.scope import group_in_scope, in_subtree
from oss.shape import compact, linked, pick
from oss.validate import validated

routes = web.RouteTableDef()

GROUP_COLUMNS = """g.*, cardinality(g.path) AS level,
    NOT EXISTS (SELECT 1 FROM groups c WHERE c.parent_id = g.id) AS leaf"""
SORTS = {"id": "g.id", "-id": "g.id DESC", "name": "lower(g.name), g.id", "-name": "lower(g.name) DESC, g.id"}


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
    parents, deep = q_oids(request, "parentIds"), q_bool(request, "deep", default=False)
    args: list[Any] = [who.group_id]
    where = [in_subtree("g.id", "$1")]
    if parents:
        args.append(parents)
        where.append("g.path && $2::text[]" if deep else "g.parent_id = ANY($2)")
    if name := q_str(request, "name"):
        args.append(f"%{name.lower()}%")
        where.append(f"lower(g.name) LIKE ${len(args)}")
    if types := q_ints(request, "types"):
        args.append(types)
        where.append(f"g.type = ANY(${len(args)}::int[])")
    order = SORTS[q_choice(request, "sort", tuple(SORTS), "id")]
    async with pool(request).acquire() as conn:
        rows = await conn.fetch(f"SELECT {GROUP_COLUMNS} FROM groups g WHERE {' AND '.join(where)} "
                                f"ORDER BY {order} LIMIT {pg.fetch} OFFSET {pg.offset}", *args)
        return json_response(listing(request, pg, await group_bodies(conn, who, rows, expand)))


@routes.post("/v2/groups/")
async def create_group(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups", write=True)
    body = validated(await json_body(request), "groupCreate")
    async with pool(request).acquire() as conn:
        parent = await group_in_scope(conn, who.group_id, body["parentId"])
        gid = new_id()
        await conn.execute(
            "INSERT INTO groups(id, name, description, type, timezone, parent_id, path, created_by) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            gid, body["name"], body.get("description"), body.get("type", 2), body.get("timezone", "UTC"),
            parent["id"], [parent["id"], *parent["path"]], who.api_user_id)
    return json_response({"id": gid}, 201)


@routes.get("/v2/groups/{id}")
async def get_group(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups")
    expand = fields(request, ("path",))
    async with pool(request).acquire() as conn:
        await group_in_scope(conn, who.group_id, oid(request))
        row = await conn.fetchrow(f"SELECT {GROUP_COLUMNS} FROM groups g WHERE g.id = $1", oid(request))
        return json_response((await group_bodies(conn, who, [row], expand))[0])


@routes.put("/v2/groups/{id}")
async def update_group(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups", write=True)
    body = validated(await json_body(request), "groupUpdate")
    columns = {"name": "name", "description": "description", "type": "type", "timezone": "timezone"}
    changes = {columns[k]: v for k, v in body.items() if k in columns}
    async with pool(request).acquire() as conn:
        group = await group_in_scope(conn, who.group_id, oid(request))
        if changes:
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=2))
            await conn.execute(f"UPDATE groups SET {sets} WHERE id = $1", group["id"], *changes.values())
    return web.Response(status=204)


@routes.delete("/v2/groups/{id}")
async def delete_group(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups", write=True)
    async with pool(request).acquire() as conn, conn.transaction():
        group = await group_in_scope(conn, who.group_id, oid(request))
        if group["id"] == who.group_id:
            raise Forbidden("An API user cannot delete its own group.")
        holders = await conn.fetchrow(
            "SELECT EXISTS (SELECT 1 FROM groups WHERE parent_id = $1) AS sub_groups, "
            "EXISTS (SELECT 1 FROM device_types WHERE group_id = $1) AS device_types, "
            "EXISTS (SELECT 1 FROM devices WHERE group_id = $1) AS devices, "
            "EXISTS (SELECT 1 FROM contract_infos WHERE group_id = $1) AS contracts, "
            "EXISTS (SELECT 1 FROM api_users WHERE group_id = $1) AS api_users, "
            "EXISTS (SELECT 1 FROM user_roles WHERE group_id = $1) AS users, "
            "EXISTS (SELECT 1 FROM base_stations WHERE group_id = $1) AS base_stations", group["id"])
        held = [name.replace("_", " ") for name, present in holders.items() if present]
        if held:
            raise Conflict(f"The group still holds {', '.join(held)}; remove them first.")
        await conn.execute("DELETE FROM groups WHERE id = $1", group["id"])
    return web.Response(status=204)
