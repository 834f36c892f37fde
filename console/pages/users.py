"""Users: the list (text, group and profile filters, sorted, paged), a user's page with its roles per group,
creating, editing, locking, deleting, and invitation / password-reset links.

Everything goes through the API as the session's caller (its rights, its scope, its errors). The link is
the one exception the API does not answer: it is issued here (console.links) after the user was read
through the API (so it lies in the caller's subtree) and only when the caller holds users:write and every
role the user holds anywhere is on the caller's subtree with rights the caller holds, since whoever sets
the password gets all of them. The link is shown once on the page's answer: never stored in clear (only
its SHA-256) and never logged here.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from console import links
from console.admin_support import (
    PAGE_SIZE,
    all_profiles,
    grantable_profiles,
    group_choices,
    offset_of,
    page_links,
    text,
)
from console.context import api, console_settings, session_of
from console.render import page_error, render
from console.times import utc_text
from oss.context import POOL
from oss.profiles import perms_of
from oss.storage import console_sessions

routes = web.RouteTableDef()
SORTS = {"name": "Name", "-name": "Name, Z to A", "email": "E-mail", "-email": "E-mail, Z to A"}
ROLES_FIELDS = "userRoles(group(name))"


@routes.get("/users")
async def user_list(request: web.Request) -> web.Response:
    q = request.query
    wanted = {"text": q.get("text", "").strip(), "groupId": q.get("groupId", ""),
              "profileId": q.get("profileId", ""), "sort": q.get("sort", "name")}
    if wanted["sort"] not in SORTS:
        wanted["sort"] = "name"
    offset = offset_of(request)
    found = await api(request).get("/v2/users/", limit=PAGE_SIZE, offset=offset, text=wanted["text"],
                                   groupIds=wanted["groupId"], profileId=wanted["profileId"], sort=wanted["sort"],
                                   fields=ROLES_FIELDS)
    return render(request, "users.html", {
        "users": found["data"], "wanted": wanted, "sorts": SORTS, "offset": offset,
        "groups": await group_choices(request, api(request)), "profiles": all_profiles(),
        "pages": page_links(request, offset, bool(found["paging"].get("next"))),
        "can_write": session_of(request).caller.can("users", write=True)})


def _new_form(request: web.Request, groups: list[Any], values: dict[str, str], errors: dict[str, str],
              message: str = "", status: int = 200) -> web.Response:
    return render(request, "user_new.html", {"groups": groups, "profiles": grantable_profiles(request),
                                             "values": values, "errors": errors, "message": message}, status=status)


@routes.get("/users/new")
async def new_user_page(request: web.Request) -> web.Response:
    values = {"firstName": "", "lastName": "", "email": "", "timezone": "UTC", "groupId": "", "profileId": ""}
    return _new_form(request, await group_choices(request, api(request)), values, {})


@routes.post("/users/new")
async def create_user(request: web.Request) -> web.Response:
    form = await request.post()
    values = {k: text(form, k) for k in ("firstName", "lastName", "email", "timezone", "groupId", "profileId")}
    body = {"firstName": values["firstName"], "lastName": values["lastName"], "email": values["email"],
            "timezone": values["timezone"] or "UTC",
            "userRoles": [{"groupId": values["groupId"], "profileId": values["profileId"]}]}
    answer = await api(request).call("POST", "/v2/users/", json=body)
    if answer.ok:
        raise web.HTTPSeeOther(f"/console/users/{answer.body['id']}?done=created")
    errors = {k.replace("userRoles[0].", ""): v for k, v in answer.field_errors().items()}
    return _new_form(request, await group_choices(request, api(request)), values, errors, answer.message,
                     answer.status)


async def _user_page(request: web.Request, user_id: str, *, link: str = "", errors: dict[str, str] | None = None,
                     message: str = "", status: int = 200) -> web.Response:
    user = await api(request).get(f"/v2/users/{user_id}", fields=ROLES_FIELDS)
    who = session_of(request).caller
    return render(request, "user.html", {
        "user": user, "groups": await group_choices(request, api(request)), "profiles": grantable_profiles(request),
        "can_write": who.can("users", write=True), "link": link, "errors": errors or {}, "message": message,
        "done": request.query.get("done", ""), "utc": utc_text}, status=status)


@routes.get("/users/{id}")
async def user_page(request: web.Request) -> web.Response:
    return await _user_page(request, request.match_info["id"])


async def _after(request: web.Request, user_id: str, answer: Any, done: str) -> web.Response:
    """Back to the user's page: with `done` when the API accepted, else with its error."""
    if answer.ok:
        raise web.HTTPSeeOther(f"/console/users/{user_id}?done={done}")
    if answer.status in (403, 404) and not answer.field_errors():
        return page_error(request, answer.status, answer.message)
    return await _user_page(request, user_id, errors=answer.field_errors(), message=answer.message,
                            status=answer.status)


@routes.post("/users/{id}/edit")
async def edit_user(request: web.Request) -> web.Response:
    user_id, form = request.match_info["id"], await request.post()
    body = {k: text(form, k) for k in ("firstName", "lastName", "timezone")}
    answer = await api(request).call("PUT", f"/v2/users/{user_id}", json=body)
    return await _after(request, user_id, answer, "edited")


@routes.post("/users/{id}/lock")
async def lock_user(request: web.Request) -> web.Response:
    user_id, form = request.match_info["id"], await request.post()
    locked = text(form, "locked") == "true"
    answer = await api(request).call("PUT", f"/v2/users/{user_id}", json={"locked": locked})
    return await _after(request, user_id, answer, "locked" if locked else "unlocked")


@routes.post("/users/{id}/roles")
async def add_role(request: web.Request) -> web.Response:
    user_id, form = request.match_info["id"], await request.post()
    role = {"groupId": text(form, "groupId"), "profileId": text(form, "profileId")}
    answer = await api(request).call("PUT", f"/v2/users/{user_id}/profiles", json={"userRoles": [role]})
    if not answer.ok and answer.field_errors():
        return await _user_page(request, user_id, errors={k.replace("userRoles[0].", ""): v
                                                          for k, v in answer.field_errors().items()},
                                message=answer.message, status=answer.status)
    return await _after(request, user_id, answer, "role-added")


@routes.post("/users/{id}/roles/remove")
async def remove_role(request: web.Request) -> web.Response:
    user_id, form = request.match_info["id"], await request.post()
    answer = await api(request).call("DELETE", f"/v2/users/{user_id}/profiles/{text(form, 'profileId')}",
                                     query={"groupId": text(form, "groupId")})
    return await _after(request, user_id, answer, "role-removed")


@routes.post("/users/{id}/delete")
async def delete_user(request: web.Request) -> web.Response:
    answer = await api(request).call("DELETE", f"/v2/users/{request.match_info['id']}")
    if answer.ok:
        raise web.HTTPSeeOther("/console/users?done=deleted")
    return page_error(request, answer.status, answer.message)


@routes.post("/users/{id}/link")
async def issue_link(request: web.Request) -> web.Response:
    """An invitation (never signed in) or password-reset link, shown once on the answer."""
    user_id = request.match_info["id"]
    user = await api(request).get(f"/v2/users/{user_id}")  # in the caller's scope, else the API's 404
    who, pool = session_of(request).caller, request.config_dict[POOL]
    if not who.can("users", write=True):
        return page_error(request, 403, "You are not allowed to write users.")
    subtree = {g.id for g in await group_choices(request, api(request))}
    held = await console_sessions.role_groups(pool, user["id"])
    if any(g["id"] not in subtree or not perms_of(list(g["profile_ids"])) <= who.perms for g in held):
        return page_error(request, 403, "This user holds rights you do not hold, or roles outside your groups: "
                                         "only someone holding them may give a link to set its password.")
    purpose = links.RESET if user.get("lastLoginTime") else links.INVITE
    url = await links.issue(pool, user["id"], purpose, console_settings(request), str(request.url.origin()))
    return await _user_page(request, user_id, link=url)
