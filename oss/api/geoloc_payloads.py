"""/groups/{id}/geoloc-payloads: the geolocation payload formats a group may use.

Formats come from the registry the operator fills (`oss.registry`); each is offered to every group,
or to one group and the groups below it. Listing them is reading the group (`groups:read`), as
listing the profiles a group offers is.
"""
from __future__ import annotations

from aiohttp import web

from oss.auth import caller
from oss.context import pool
from oss.errors import json_response
from oss.paging import listing, page
from oss.params import oid
from oss.storage import geoloc_payloads, groups

routes = web.RouteTableDef()


@routes.get("/v2/groups/{id}/geoloc-payloads")
async def list_geoloc_payloads(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups")
    pg = page(request)
    async with pool(request).acquire() as conn:
        group = await groups.scoped(conn, who.group_id, oid(request))
        rows = await geoloc_payloads.page_offered_to(conn, group["id"], pg)
    return json_response(listing(request, pg, [{"id": r["id"], "name": r["name"]} for r in rows]))
