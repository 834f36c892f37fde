"""/api-users: machine credentials bound to a group and profiles; secrets shown once."""
from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import Caller, caller, hash_secret, new_secret
from oss.clock import ms, new_id
from oss.context import CREDENTIALS, pool
from oss.errors import BadRequest, FieldError, Forbidden, json_response
from oss.fields import Fields, fields
from oss.paging import listing, page
from oss.params import json_body, oid, q_oid, q_oids
from oss.profiles import PROFILES, perms_of
from oss.scope import fetch_scoped, group_in_scope, in_subtree
from oss.shape import compact, expand_links
from oss.validate import validated

routes = web.RouteTableDef()
EXPANDABLE = ("group", "profiles")


def grantable(who: Caller, profile_ids: list[str], field: str) -> list[str]:
    """Known profiles whose rights the caller holds itself (no escalation)."""
    for i, pid in enumerate(profile_ids):
        if pid not in PROFILES:
            raise BadRequest(FieldError(f"{field}[{i}]", f"profile {pid} does not exist"))
    if not perms_of(profile_ids) <= who.perms:
        raise Forbidden("You cannot grant rights you do not hold.")
    return list(dict.fromkeys(profile_ids))


def api_user_body(row: asyncpg.Record, expand: Fields) -> dict[str, Any]:
    profiles = []
    for pid in row["profile_ids"]:
        profile = PROFILES.get(pid)
        item: dict[str, Any] = {"id": pid, "name": profile.name if profile else None}
        if profile and "roles" in expand.get("profiles", {}):
            item["roles"] = [{"id": r.id, "name": r.name, "perms": [{"name": p} for p in sorted(r.perms)]}
                             for r in profile.roles]
        profiles.append(compact(item))
    return compact({"id": row["id"], "name": row["name"], "timezone": row["timezone"],
                    "group": {"id": row["group_id"]}, "creationTime": ms(row["created_at"]), "profiles": profiles})


async def scoped_api_user(conn: asyncpg.Connection, who: Caller, ident: str) -> asyncpg.Record:
    return await fetch_scoped(conn, f"SELECT * FROM api_users WHERE id = $2 AND {in_subtree('group_id', '$1')}",
                              who.group_id, ident, what="API user")


@routes.get("/v2/api-users/")
async def list_api_users(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("api-users")
    pg = page(request)
    expand = fields(request, EXPANDABLE)
    args: list[Any] = [who.group_id]
    where = [in_subtree("group_id", "$1")]
    if profile_id := q_oid(request, "profileId"):
        args.append(profile_id)
        where.append(f"${len(args)} = ANY(profile_ids)")
    if group_ids := q_oids(request, "groupIds"):
        args.append(group_ids)
        where.append(f"group_id = ANY(${len(args)})")
    async with pool(request).acquire() as conn:
        rows = await conn.fetch(f"SELECT * FROM api_users WHERE {' AND '.join(where)} ORDER BY id "
                                f"LIMIT {pg.fetch} OFFSET {pg.offset}", *args)
        items = [api_user_body(r, expand) for r in rows]
        await expand_links(conn, items, expand, {"group": "group"})
    return json_response(listing(request, pg, items))


@routes.post("/v2/api-users/")
async def create_api_user(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("api-users", write=True)
    body = validated(await json_body(request), "apiUserCreation")
    profile_ids = grantable(who, body["profileIds"], "profileIds")
    secret = new_secret()
    hashed = await asyncio.to_thread(hash_secret, secret)
    ident = new_id()
    async with pool(request).acquire() as conn:
        await group_in_scope(conn, who.group_id, body["groupId"])
        await conn.execute("INSERT INTO api_users(id, name, timezone, group_id, profile_ids, secret_hash, created_by) "
                           "VALUES ($1, $2, $3, $4, $5, $6, $7)", ident, body["name"], body.get("timezone", "UTC"),
                           body["groupId"], profile_ids, hashed, who.api_user_id)
    return json_response({"id": ident, "accessToken": secret}, 201)


@routes.get("/v2/api-users/{id}")
async def get_api_user(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("api-users")
    expand = fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        items = [api_user_body(await scoped_api_user(conn, who, oid(request)), expand)]
        await expand_links(conn, items, expand, {"group": "group"})
    return json_response(items[0])


async def _set_profiles(request: web.Request, change, *, on_self: bool = True) -> web.Response:
    """Apply `change` to an API user of the caller's groups; `on_self` False refuses the caller itself."""
    who = caller(request)
    who.require("api-users", write=True)
    async with pool(request).acquire() as conn:
        row = await scoped_api_user(conn, who, oid(request))
        if row["id"] == who.api_user_id and not on_self:
            raise Forbidden("An API user cannot delete itself or change its own profiles.")
        await change(conn, who, row)
    request.app[CREDENTIALS].forget(row["id"])
    return web.Response(status=204)


@routes.put("/v2/api-users/{id}")
async def update_api_user(request: web.Request) -> web.Response:
    body = validated(await json_body(request), "apiUserEdition")

    async def change(conn: asyncpg.Connection, who: Caller, row: asyncpg.Record) -> None:
        profile_ids = grantable(who, body["profileId"], "profileId") if "profileId" in body else row["profile_ids"]
        await conn.execute("UPDATE api_users SET name = $2, timezone = $3, profile_ids = $4 WHERE id = $1",
                           row["id"], body.get("name", row["name"]), body.get("timezone", row["timezone"]),
                           profile_ids)

    return await _set_profiles(request, change, on_self="profileId" not in body)


@routes.put("/v2/api-users/{id}/profiles")
async def add_profiles(request: web.Request) -> web.Response:
    body = validated(await json_body(request), "profileIds")

    async def change(conn: asyncpg.Connection, who: Caller, row: asyncpg.Record) -> None:
        added = grantable(who, body["profileId"], "profileId")
        await conn.execute("UPDATE api_users SET profile_ids = $2 WHERE id = $1", row["id"],
                           list(dict.fromkeys([*row["profile_ids"], *added])))

    return await _set_profiles(request, change)


@routes.delete("/v2/api-users/{id}/profiles/{profileId}")
async def remove_profile(request: web.Request) -> web.Response:
    profile_id = oid(request, "profileId")

    async def change(conn: asyncpg.Connection, who: Caller, row: asyncpg.Record) -> None:
        await conn.execute("UPDATE api_users SET profile_ids = array_remove(profile_ids, $2) WHERE id = $1",
                           row["id"], profile_id)

    return await _set_profiles(request, change, on_self=False)


@routes.delete("/v2/api-users/{id}")
async def delete_api_user(request: web.Request) -> web.Response:
    async def change(conn: asyncpg.Connection, who: Caller, row: asyncpg.Record) -> None:
        await conn.execute("DELETE FROM api_users WHERE id = $1", row["id"])

    return await _set_profiles(request, change, on_self=False)


@routes.put("/v2/api-users/{id}/renew-credential")
async def renew_credential(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("api-users", write=True)
    secret = new_secret()
    hashed = await asyncio.to_thread(hash_secret, secret)
    async with pool(request).acquire() as conn:
        row = await scoped_api_user(conn, who, oid(request))
        await conn.execute("UPDATE api_users SET secret_hash = $2 WHERE id = $1", row["id"], hashed)
    request.app[CREDENTIALS].forget(row["id"])
    return json_response({"accessToken": secret})
