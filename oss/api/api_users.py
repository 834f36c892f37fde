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
from oss.profiles import PROFILES, grantable, require_manageable
from oss.shape import compact, expand_links
from oss.storage import api_users, groups
from oss.validate import validated

routes = web.RouteTableDef()
EXPANDABLE = ("group", "profiles")


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


@routes.get("/v2/api-users/")
async def list_api_users(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("api-users")
    pg = page(request)
    expand = fields(request, EXPANDABLE)
    wanted = api_users.Filter(profile_id=q_oid(request, "profileId"), group_ids=q_oids(request, "groupIds"))
    async with pool(request).acquire() as conn:
        items = [api_user_body(r, expand) for r in await api_users.page(conn, who.group_id, pg, wanted)]
        await expand_links(conn, items, expand, {"group": "group"})
    return json_response(listing(request, pg, items))


@routes.post("/v2/api-users/")
async def create_api_user(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("api-users", write=True)
    body = validated(await json_body(request), "apiUserCreation")
    profile_ids = grantable(who.perms, body["profileIds"], "profileIds")
    secret = new_secret()
    hashed = await asyncio.to_thread(hash_secret, secret)
    ident = new_id()
    async with pool(request).acquire() as conn:
        await groups.scoped(conn, who.group_id, body["groupId"])
        await api_users.create(conn, {
            "id": ident, "name": body["name"], "timezone": body.get("timezone", "UTC"), "group_id": body["groupId"],
            "profile_ids": profile_ids, "secret_hash": hashed, "created_by": who.api_user_id})
    return json_response({"id": ident, "accessToken": secret}, 201)


@routes.get("/v2/api-users/{id}")
async def get_api_user(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("api-users")
    expand = fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        items = [api_user_body(await api_users.scoped(conn, who.group_id, oid(request)), expand)]
        await expand_links(conn, items, expand, {"group": "group"})
    return json_response(items[0])


async def _set_profiles(request: web.Request, change, *, on_self: bool = True) -> web.Response:
    """Apply `change` to an API user of the caller's groups holding no right the caller lacks; `on_self`
    False refuses the caller itself."""
    who = caller(request)
    who.require("api-users", write=True)
    async with pool(request).acquire() as conn:
        row = await api_users.scoped(conn, who.group_id, oid(request))
        if row["id"] == who.api_user_id and not on_self:
            raise Forbidden("An API user cannot delete itself or change its own profiles.")
        require_manageable(who.perms, row["profile_ids"])
        await change(conn, who, row)
    request.app[CREDENTIALS].forget(row["id"])
    return web.Response(status=204)


def profile_ids_of(body: dict[str, Any]) -> tuple[list[str], str] | None:
    """The profiles a body names and the field that named them: `profileId` (the schema's name) or
    `profileIds` (the reference's examples' name); both may be sent. None when neither is."""
    if "profileId" not in body and "profileIds" not in body:
        return None
    field = "profileIds" if "profileIds" in body and "profileId" not in body else "profileId"
    return [*body.get("profileId", []), *body.get("profileIds", [])], field


@routes.put("/v2/api-users/{id}")
async def update_api_user(request: web.Request) -> web.Response:
    body = validated(await json_body(request), "apiUserEdition")
    named = profile_ids_of(body)

    async def change(conn: asyncpg.Connection, who: Caller, row: asyncpg.Record) -> None:
        profile_ids = grantable(who.perms, *named) if named else row["profile_ids"]
        await api_users.edit(conn, row["id"], {"name": body.get("name", row["name"]),
                                               "timezone": body.get("timezone", row["timezone"]),
                                               "profile_ids": profile_ids})

    return await _set_profiles(request, change, on_self=named is None)


@routes.put("/v2/api-users/{id}/profiles")
async def add_profiles(request: web.Request) -> web.Response:
    named = profile_ids_of(validated(await json_body(request), "profileIds"))
    if not named:
        raise BadRequest(FieldError("profileIds", "is required: the profiles to add (profileId is accepted too)"))

    async def change(conn: asyncpg.Connection, who: Caller, row: asyncpg.Record) -> None:
        added = grantable(who.perms, *named)
        await api_users.edit(conn, row["id"], {"profile_ids": list(dict.fromkeys([*row["profile_ids"], *added]))})

    return await _set_profiles(request, change)


@routes.delete("/v2/api-users/{id}/profiles/{profileId}")
async def remove_profile(request: web.Request) -> web.Response:
    profile_id = oid(request, "profileId")

    async def change(conn: asyncpg.Connection, who: Caller, row: asyncpg.Record) -> None:
        await api_users.remove_profile(conn, row["id"], profile_id)

    return await _set_profiles(request, change, on_self=False)


@routes.delete("/v2/api-users/{id}")
async def delete_api_user(request: web.Request) -> web.Response:
    async def change(conn: asyncpg.Connection, who: Caller, row: asyncpg.Record) -> None:
        await api_users.delete(conn, row["id"])

    return await _set_profiles(request, change, on_self=False)


@routes.put("/v2/api-users/{id}/renew-credential")
async def renew_credential(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("api-users", write=True)
    async with pool(request).acquire() as conn:
        row = await api_users.scoped(conn, who.group_id, oid(request))
        require_manageable(who.perms, row["profile_ids"])
        secret = new_secret()
        hashed = await asyncio.to_thread(hash_secret, secret)
        await api_users.edit(conn, row["id"], {"secret_hash": hashed})
    request.app[CREDENTIALS].forget(row["id"])
    return json_response({"accessToken": secret})
