"""/users: people holding profiles on groups (user roles); a caller sees the roles in its subtree."""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import Caller, caller
from oss.clock import ms, new_id
from oss.context import pool
from oss.errors import Conflict, json_response
from oss.fields import Fields, fields
from oss.paging import listing, page
from oss.params import json_body, oid, q_bool, q_choice, q_oid, q_oids, q_str
from oss.profiles import PROFILES, grantable
from oss.shape import compact, linked, pick
from oss.storage import groups, users
from oss.validate import validated

routes = web.RouteTableDef()


async def user_bodies(conn: asyncpg.Connection, who: Caller, rows: list[asyncpg.Record],
                      expand: Fields) -> list[dict[str, Any]]:
    roles = await users.roles(conn, who.group_id, [r["id"] for r in rows])
    wanted = expand.get("userRoles", {})
    linked_groups = await linked(conn, "group", (r["group_id"] for r in roles)) if "group" in wanted else {}
    by_user: dict[str, list[dict[str, Any]]] = {}
    for role in roles:
        profile = PROFILES.get(role["profile_id"])
        by_user.setdefault(role["user_id"], []).append({
            "group": pick(linked_groups.get(role["group_id"], {"id": role["group_id"]}), wanted.get("group", {})),
            "profile": compact({"id": role["profile_id"], "name": profile.name if profile else None}),
        })
    return [compact({
        "id": r["id"], "firstName": r["first_name"], "lastName": r["last_name"], "email": r["email"],
        "timezone": r["timezone"], "locked": r["locked"], "creationTime": ms(r["created_at"]),
        "lastLoginTime": r["last_login_time"], "userRoles": by_user.get(r["id"], []),
    }) for r in rows]


async def checked_roles(conn: asyncpg.Connection, who: Caller, roles: list[dict[str, str]]) -> list[tuple[str, str]]:
    """The (group, profile) pairs asked for, once the caller may grant each profile on each group."""
    grantable(who.perms, [r["profileId"] for r in roles], "userRoles.profileId")
    for role in roles:
        await groups.scoped(conn, who.group_id, role["groupId"])
    return list(dict.fromkeys((r["groupId"], r["profileId"]) for r in roles))


@routes.get("/v2/users/")
async def list_users(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users")
    pg = page(request)
    expand = fields(request, ("userRoles",))
    text, profile_id, group_ids = q_str(request, "text"), q_oid(request, "profileId"), q_oids(request, "groupIds")
    wanted = users.Filter(text=text, profile_id=profile_id, group_ids=group_ids,
                          deep=bool(group_ids) and q_bool(request, "deep", default=False))
    sort = q_choice(request, "sort", tuple(users.SORTS), "id")
    async with pool(request).acquire() as conn:
        rows = await users.page(conn, who.group_id, pg, wanted, sort)
        return json_response(listing(request, pg, await user_bodies(conn, who, rows, expand)))


@routes.post("/v2/users/")
async def create_user(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users", write=True)
    body = validated(await json_body(request), "userCreation")
    ident = new_id()
    async with pool(request).acquire() as conn, conn.transaction():
        roles = await checked_roles(conn, who, body["userRoles"])
        if not await users.create(conn, {"id": ident, "first_name": body["firstName"], "last_name": body["lastName"],
                                         "email": body["email"], "timezone": body.get("timezone", "UTC"),
                                         "created_by": who.api_user_id}):
            raise Conflict(f"A user with e-mail {body['email']} already exists.")
        await users.add_roles(conn, ident, roles)
    return json_response({"id": ident}, 201)


@routes.get("/v2/users/{id}")
async def get_user(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users")
    expand = fields(request, ("userRoles",))
    async with pool(request).acquire() as conn:
        row = await users.scoped(conn, who.group_id, oid(request))
        return json_response((await user_bodies(conn, who, [row], expand))[0])


@routes.put("/v2/users/{id}")
async def update_user(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users", write=True)
    body = validated(await json_body(request), "userUpdate")
    async with pool(request).acquire() as conn, conn.transaction():
        row = await users.scoped(conn, who.group_id, oid(request))
        await users.edit(conn, row["id"], {"first_name": body.get("firstName", row["first_name"]),
                                           "last_name": body.get("lastName", row["last_name"]),
                                           "timezone": body.get("timezone", row["timezone"]),
                                           "locked": body.get("locked", row["locked"])})
        if "userRoles" in body:
            roles = await checked_roles(conn, who, body["userRoles"])
            await users.remove_roles(conn, who.group_id, row["id"])
            await users.add_roles(conn, row["id"], roles)
    return web.Response(status=204)


@routes.put("/v2/users/{id}/profiles")
async def add_user_roles(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users", write=True)
    body = validated(await json_body(request), "userRoles")
    async with pool(request).acquire() as conn, conn.transaction():
        row = await users.scoped(conn, who.group_id, oid(request))
        await users.add_roles(conn, row["id"], await checked_roles(conn, who, body["userRoles"]))
    return web.Response(status=204)


@routes.delete("/v2/users/{id}/profiles/{profileId}")
async def remove_user_role(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users", write=True)
    profile_id = oid(request, "profileId")
    group_id = q_oid(request, "groupId")
    async with pool(request).acquire() as conn, conn.transaction():
        row = await users.scoped(conn, who.group_id, oid(request))
        await users.remove_roles(conn, who.group_id, row["id"], profile_id=profile_id, group_id=group_id)
    return web.Response(status=204)


@routes.delete("/v2/users/{id}")
async def delete_user(request: web.Request) -> web.Response:
    """Remove the user's roles in the caller's subtree, and the user once it holds none."""
    who = caller(request)
    who.require("users", write=True)
    async with pool(request).acquire() as conn, conn.transaction():
        row = await users.scoped(conn, who.group_id, oid(request))
        await users.remove_roles(conn, who.group_id, row["id"])
        await users.delete_if_roleless(conn, row["id"])
    return web.Response(status=204)
