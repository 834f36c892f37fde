"""API access: the API users (machine credentials) of the subtree, creating one, editing its profiles,
renewing its credential and deleting it, all through the API as the session's caller.

A credential (the API user's id and access token) is shown once, in the answer to the POST that made it
(creation or renewal); the API stores only its hash, so no later page can show it again.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from console.admin_support import PAGE_SIZE, grantable_profiles, group_choices, offset_of, page_links, text
from console.context import api, session_of
from console.render import page_error, render
from console.times import utc_text

routes = web.RouteTableDef()


@routes.get("/api-users")
async def api_user_list(request: web.Request) -> web.Response:
    offset = offset_of(request)
    found = await api(request).get("/v2/api-users/", limit=PAGE_SIZE, offset=offset, fields="group(name)")
    return render(request, "api_users.html", {
        "api_users": found["data"], "pages": page_links(request, offset, bool(found["paging"].get("next"))),
        "can_write": session_of(request).caller.can("api-users", write=True)})


def _form(request: web.Request, groups: list[Any], values: dict[str, Any], errors: dict[str, str],
          message: str = "", status: int = 200) -> web.Response:
    return render(request, "api_user_new.html", {"groups": groups, "profiles": grantable_profiles(request),
                                                 "values": values, "errors": errors, "message": message},
                  status=status)


@routes.get("/api-users/new")
async def new_api_user_page(request: web.Request) -> web.Response:
    values = {"name": "", "timezone": "UTC", "groupId": "", "profileIds": []}
    return _form(request, await group_choices(request, api(request)), values, {})


@routes.post("/api-users/new")
async def create_api_user(request: web.Request) -> web.Response:
    """Create it and show its credential this once."""
    form = await request.post()
    values = {"name": text(form, "name"), "timezone": text(form, "timezone") or "UTC",
              "groupId": text(form, "groupId"), "profileIds": [str(v) for v in form.getall("profileIds", [])]}
    answer = await api(request).call("POST", "/v2/api-users/", json=values)
    if not answer.ok:
        return _form(request, await group_choices(request, api(request)), values, answer.field_errors(),
                     answer.message, answer.status)
    return render(request, "api_user_created.html", {"id": answer.body["id"], "token": answer.body["accessToken"],
                                                     "name": values["name"], "renewed": False}, status=201)


@routes.get("/api-users/{id}")
async def api_user_page(request: web.Request) -> web.Response:
    return await _api_user_page(request)


async def _api_user_page(request: web.Request, *, errors: dict[str, str] | None = None, message: str = "",
                         status: int = 200) -> web.Response:
    ident = request.match_info["id"]
    found = await api(request).get(f"/v2/api-users/{ident}", fields="group(name)")
    return render(request, "api_user.html", {
        "api_user": found, "held": {p["id"] for p in found.get("profiles", [])},
        "profiles": grantable_profiles(request), "can_write": session_of(request).caller.can("api-users", write=True),
        "errors": errors or {}, "message": message, "done": request.query.get("done", ""),
        "created": utc_text(found.get("creationTime"))}, status=status)


@routes.post("/api-users/{id}/edit")
async def edit_api_user(request: web.Request) -> web.Response:
    ident, form = request.match_info["id"], await request.post()
    body = {"name": text(form, "name"), "timezone": text(form, "timezone") or "UTC",
            "profileIds": [str(v) for v in form.getall("profileIds", [])]}
    answer = await api(request).call("PUT", f"/v2/api-users/{ident}", json=body)
    if answer.ok:
        raise web.HTTPSeeOther(f"/console/api-users/{ident}?done=saved")
    if answer.status in (403, 404):
        return page_error(request, answer.status, answer.message)
    return await _api_user_page(request, errors=answer.field_errors(), message=answer.message, status=answer.status)


@routes.post("/api-users/{id}/renew")
async def renew_credential(request: web.Request) -> web.Response:
    """A new access token (the old one stops working at once), shown this once."""
    ident = request.match_info["id"]
    answer = await api(request).call("PUT", f"/v2/api-users/{ident}/renew-credential")
    if not answer.ok:
        return page_error(request, answer.status, answer.message)
    found = await api(request).get(f"/v2/api-users/{ident}")
    return render(request, "api_user_created.html", {"id": ident, "token": answer.body["accessToken"],
                                                     "name": found["name"], "renewed": True})


@routes.post("/api-users/{id}/delete")
async def delete_api_user(request: web.Request) -> web.Response:
    answer = await api(request).call("DELETE", f"/v2/api-users/{request.match_info['id']}")
    if not answer.ok:
        return page_error(request, answer.status, answer.message)
    raise web.HTTPSeeOther("/console/api-users?done=deleted")
