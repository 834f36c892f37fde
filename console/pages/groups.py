"""Groups: the session's subtree as a nested list, creating a sub-group, renaming, moving (Backhaul's
`parentId` on the group update) and deleting one, and a group's page, all through the API as the
session's caller."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from console.admin_support import GroupChoice, group_choices, text
from console.context import api, session_of
from console.render import page_error, render
from console.times import utc_text

routes = web.RouteTableDef()
TYPES = {0: "SO", 2: "Other", 5: "SVNO", 6: "Partners", 7: "NIP", 8: "DIST", 9: "Channel", 10: "Starter",
         11: "Partner"}


def children_of(tree: list[GroupChoice]) -> dict[str | None, list[GroupChoice]]:
    """Each group's children, in tree order (the top group's parent key is None)."""
    known = {g.id for g in tree}
    out: dict[str | None, list[GroupChoice]] = {}
    for g in tree:
        out.setdefault(g.parent_id if g.parent_id in known else None, []).append(g)
    return out


def move_targets(tree: list[GroupChoice], ident: str) -> list[GroupChoice]:
    """Where a group may go: any group of the tree but itself and those below it."""
    below, children = {ident}, children_of(tree)
    pending = [ident]
    while pending:
        for child in children.get(pending.pop(), []):
            below.add(child.id)
            pending.append(child.id)
    return [g for g in tree if g.id not in below]


async def _tree_page(request: web.Request, *, values: dict[str, str] | None = None,
                     errors: dict[str, str] | None = None, message: str = "", status: int = 200) -> web.Response:
    tree = await group_choices(request, api(request))
    return render(request, "groups.html", {
        "tree": tree, "children": children_of(tree), "can_write": session_of(request).caller.can("groups", write=True),
        "values": values or {"name": "", "parentId": request.query.get("parentId", "")}, "errors": errors or {},
        "message": message, "done": request.query.get("done", "")}, status=status)


@routes.get("/groups")
async def group_tree(request: web.Request) -> web.Response:
    return await _tree_page(request)


@routes.post("/groups/new")
async def create_group(request: web.Request) -> web.Response:
    form = await request.post()
    values = {"name": text(form, "name"), "parentId": text(form, "parentId")}
    answer = await api(request).call("POST", "/v2/groups/", json=values)
    if answer.ok:
        raise web.HTTPSeeOther(f"/console/groups/{answer.body['id']}?done=created")
    return await _tree_page(request, values=values, errors=answer.field_errors(), message=answer.message,
                            status=answer.status)


async def _group_page(request: web.Request, ident: str, *, errors: dict[str, str] | None = None,
                      message: str = "", status: int = 200) -> web.Response:
    group = await api(request).get(f"/v2/groups/{ident}", fields="path(name)")
    subs = await api(request).pages("/v2/groups/", parentIds=ident, sort="name")
    tree = await group_choices(request, api(request))
    return render(request, "group.html", {
        "group": group, "subs": subs, "type_name": TYPES.get(group.get("type", 2), str(group.get("type"))),
        "created": utc_text(group.get("creationTime")), "errors": errors or {}, "message": message,
        "can_write": session_of(request).caller.can("groups", write=True),
        "is_own": ident == session_of(request).caller.group_id, "done": request.query.get("done", ""),
        "targets": move_targets(tree, ident)},
        status=status)


@routes.get("/groups/{id}")
async def group_page(request: web.Request) -> web.Response:
    return await _group_page(request, request.match_info["id"])


@routes.post("/groups/{id}/edit")
async def edit_group(request: web.Request) -> web.Response:
    ident, form = request.match_info["id"], await request.post()
    body: dict[str, Any] = {"name": text(form, "name"), "description": text(form, "description") or None}
    answer = await api(request).call("PUT", f"/v2/groups/{ident}", json=body)
    if answer.ok:
        raise web.HTTPSeeOther(f"/console/groups/{ident}?done=saved")
    if answer.status in (403, 404):
        return page_error(request, answer.status, answer.message)
    return await _group_page(request, ident, errors=answer.field_errors(), message=answer.message,
                             status=answer.status)


@routes.post("/groups/{id}/move")
async def move_group(request: web.Request) -> web.Response:
    ident, form = request.match_info["id"], await request.post()
    answer = await api(request).call("PUT", f"/v2/groups/{ident}", json={"parentId": text(form, "parentId")})
    if answer.ok:
        raise web.HTTPSeeOther(f"/console/groups/{ident}?done=moved")
    if answer.status in (403, 404):
        return page_error(request, answer.status, answer.message)
    return await _group_page(request, ident, errors=answer.field_errors(), message=answer.message,
                             status=answer.status)


@routes.post("/groups/{id}/delete")
async def delete_group(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    answer = await api(request).call("DELETE", f"/v2/groups/{ident}")
    if answer.ok:
        raise web.HTTPSeeOther("/console/groups?done=deleted")
    if answer.status == 409:
        return await _group_page(request, ident, message=answer.message, status=409)
    return page_error(request, answer.status, answer.message)
