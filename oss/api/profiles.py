"""/profiles: the predefined profiles a group's users and API users can hold."""
from __future__ import annotations

from aiohttp import web

from oss.auth import caller
from oss.context import pool
from oss.errors import NotFound, json_response
from oss.fields import fields
from oss.paging import listing, page
from oss.params import oid, q_oid
from oss.profiles import PROFILES, profile_body
from oss.shape import expand_links
from oss.storage import groups

routes = web.RouteTableDef()


@routes.get("/v2/profiles/")
async def list_profiles(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups")
    pg = page(request)
    expand = fields(request, ("group", "roles"))
    group_id = q_oid(request, "groupId", required=True)
    async with pool(request).acquire() as conn:
        await groups.scoped(conn, who.group_id, group_id)
        items = [profile_body(p, {"id": group_id}, expand)
                 for p in list(PROFILES.values())[pg.offset: pg.offset + pg.fetch]]
        await expand_links(conn, items, expand, {"group": "group"})
    return json_response(listing(request, pg, items))


@routes.get("/v2/profiles/{id}")
async def get_profile(request: web.Request) -> web.Response:
    caller(request).require("groups")
    profile = PROFILES.get(oid(request))
    if profile is None:
        raise NotFound("The requested profile was not found.")
    return json_response(profile_body(profile, None, fields(request, ("group", "roles"))))
