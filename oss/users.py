"""/users: people holding profiles on groups (user roles); a caller sees the roles in its subtree."""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss.api_users import grantable
from oss.auth import Caller, caller
from oss.clock import ms, new_id
from oss.context import pool
from oss.errors import Conflict, NotFound, json_response
from oss.fields import Fields, fields
from oss.paging import listing, page
from oss.params import json_body, oid, q_bool, q_choice, q_oid, q_oids, q_str
from oss.profiles import PROFILES
from oss.scope import group_in_scope, subtree
from oss.shape import compact, linked, pick
from oss.validate import validated

routes = web.RouteTableDef()
SORTS = {"id": "u.id", "-id": "u.id DESC", "name": "lower(u.last_name), lower(u.first_name), u.id",
         "-name": "lower(u.last_name) DESC, lower(u.first_name) DESC, u.id",
         "email": "lower(u.email), u.id", "-email": "lower(u.email) DESC, u.id"}
VISIBLE = f"EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id AND r.group_id IN {subtree('$1')})"


async def user_bodies(conn: asyncpg.Connection, who: Caller, rows: list[asyncpg.Record],
                      expand: Fields) -> list[dict[str, Any]]:
    roles = await conn.fetch(f"SELECT * FROM user_roles WHERE user_id = ANY($2) AND group_id IN {subtree('$1')} "
                             "ORDER BY group_id, profile_id", who.group_id, [r["id"] for r in rows])
    wanted = expand.get("userRoles", {})
    groups = await linked(conn, "group", (r["group_id"] for r in roles)) if "group" in wanted else {}
    by_user: dict[str, list[dict[str, Any]]] = {}
    for role in roles:
        profile = PROFILES.get(role["profile_id"])
        by_user.setdefault(role["user_id"], []).append({
            "group": pick(groups.get(role["group_id"], {"id": role["group_id"]}), wanted.get("group", {})),
            "profile": compact({"id": role["profile_id"], "name": profile.name if profile else None}),
        })
    return [compact({
        "id": r["id"], "firstName": r["first_name"], "lastName": r["last_name"], "email": r["email"],
        "timezone": r["timezone"], "locked": r["locked"], "creationTime": ms(r["created_at"]),
        "lastLoginTime": r["last_login_time"], "userRoles": by_user.get(r["id"], []),
    }) for r in rows]


async def scoped_user(conn: asyncpg.Connection, who: Caller, ident: str) -> asyncpg.Record:
    row = await conn.fetchrow(f"SELECT * FROM users u WHERE u.id = $2 AND {VISIBLE}", who.group_id, ident)
    if row is None:
        raise NotFound("The requested user was not found.")
    return row


async def checked_roles(conn: asyncpg.Connection, who: Caller, roles: list[dict[str, str]]) -> list[tuple[str, str]]:
    grantable(who, [r["profileId"] for r in roles], "userRoles.profileId")
    for role in roles:
        await group_in_scope(conn, who.group_id, role["groupId"])
    return list(dict.fromkeys((r["groupId"], r["profileId"]) for r in roles))


async def add_roles(conn: asyncpg.Connection, user_id: str, roles: list[tuple[str, str]]) -> None:
    await conn.executemany("INSERT INTO user_roles(user_id, group_id, profile_id) VALUES ($1, $2, $3) "
                           "ON CONFLICT DO NOTHING", [(user_id, g, p) for g, p in roles])


@routes.get("/v2/users/")
async def list_users(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users")
    pg = page(request)
    expand = fields(request, ("userRoles",))
    args: list[Any] = [who.group_id]
    where = [VISIBLE]
    if text := q_str(request, "text"):
        args.append(f"%{text.lower()}%")
        n = len(args)
        where.append(f"(lower(u.first_name || ' ' || u.last_name) LIKE ${n} OR lower(u.email) LIKE ${n})")
    if profile_id := q_oid(request, "profileId"):
        args.append(profile_id)
        where.append(f"EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id AND r.profile_id = ${len(args)})")
    if group_ids := q_oids(request, "groupIds"):
        args.append(group_ids)
        n = len(args)
        target = (f"(SELECT id FROM groups WHERE id = ANY(${n}) OR path && ${n}::text[])"
                  if q_bool(request, "deep", default=False) else f"(SELECT unnest(${n}::text[]))")
        where.append(f"EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id AND r.group_id IN {target})")
    order = SORTS[q_choice(request, "sort", tuple(SORTS), "id")]
    async with pool(request).acquire() as conn:
        rows = await conn.fetch(f"SELECT u.* FROM users u WHERE {' AND '.join(where)} ORDER BY {order} "
                                f"LIMIT {pg.fetch} OFFSET {pg.offset}", *args)
        return json_response(listing(request, pg, await user_bodies(conn, who, rows, expand)))


@routes.post("/v2/users/")
async def create_user(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users", write=True)
    body = validated(await json_body(request), "userCreation")
    ident = new_id()
    async with pool(request).acquire() as conn, conn.transaction():
        roles = await checked_roles(conn, who, body["userRoles"])
        try:
            await conn.execute("INSERT INTO users(id, first_name, last_name, email, timezone, created_by) "
                               "VALUES ($1, $2, $3, $4, $5, $6)", ident, body["firstName"], body["lastName"],
                               body["email"], body.get("timezone", "UTC"), who.api_user_id)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"A user with e-mail {body['email']} already exists.") from None
        await add_roles(conn, ident, roles)
    return json_response({"id": ident}, 201)


@routes.get("/v2/users/{id}")
async def get_user(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users")
    expand = fields(request, ("userRoles",))
    async with pool(request).acquire() as conn:
        row = await scoped_user(conn, who, oid(request))
        return json_response((await user_bodies(conn, who, [row], expand))[0])


@routes.put("/v2/users/{id}")
async def update_user(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users", write=True)
    body = validated(await json_body(request), "userUpdate")
    async with pool(request).acquire() as conn, conn.transaction():
        row = await scoped_user(conn, who, oid(request))
        await conn.execute("UPDATE users SET first_name = $2, last_name = $3, timezone = $4 WHERE id = $1",
                           row["id"], body.get("firstName", row["first_name"]),
                           body.get("lastName", row["last_name"]), body.get("timezone", row["timezone"]))
        if "userRoles" in body:
            roles = await checked_roles(conn, who, body["userRoles"])
            await conn.execute(f"DELETE FROM user_roles WHERE user_id = $2 AND group_id IN {subtree('$1')}",
                               who.group_id, row["id"])
            await add_roles(conn, row["id"], roles)
    return web.Response(status=204)


@routes.put("/v2/users/{id}/profiles")
async def add_user_roles(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users", write=True)
    body = validated(await json_body(request), "userRoles")
    async with pool(request).acquire() as conn, conn.transaction():
        row = await scoped_user(conn, who, oid(request))
        await add_roles(conn, row["id"], await checked_roles(conn, who, body["userRoles"]))
    return web.Response(status=204)


@routes.delete("/v2/users/{id}/profiles/{profileId}")
async def remove_user_role(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("users", write=True)
    profile_id = oid(request, "profileId")
    group_id = q_oid(request, "groupId")
    async with pool(request).acquire() as conn, conn.transaction():
        row = await scoped_user(conn, who, oid(request))
        await conn.execute(f"DELETE FROM user_roles WHERE user_id = $2 AND profile_id = $3 "
                           f"AND ($4::text IS NULL OR group_id = $4) AND group_id IN {subtree('$1')}",
                           who.group_id, row["id"], profile_id, group_id)
    return web.Response(status=204)


@routes.delete("/v2/users/{id}")
async def delete_user(request: web.Request) -> web.Response:
    """Remove the user's roles in the caller's subtree, and the user once it holds none."""
    who = caller(request)
    who.require("users", write=True)
    async with pool(request).acquire() as conn, conn.transaction():
        row = await scoped_user(conn, who, oid(request))
        await conn.execute(f"DELETE FROM user_roles WHERE user_id = $2 AND group_id IN {subtree('$1')}",
                           who.group_id, row["id"])
        await conn.execute("DELETE FROM users WHERE id = $1 AND NOT EXISTS "
                           "(SELECT 1 FROM user_roles WHERE user_id = $1)", row["id"])
    return web.Response(status=204)
