"""The error log: callbacks not delivered (retries exhausted) for a group of the subtree and its sub-groups,
newest first, between two times, paged by the API's cursor, through the API as the session's caller."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from yarl import URL

from console.admin_support import PAGE_SIZE, group_choices
from console.context import api, session_of
from console.render import render
from console.times import parse_utc, utc_text

routes = web.RouteTableDef()


def next_link(request: web.Request, api_next: str | None) -> str | None:
    """The console URL of the page after this one, carrying the API's cursor (`before` and `pageId`)."""
    if not api_next:
        return None
    cursor = URL(api_next).query
    query = {k: v for k, v in request.query.items() if k not in ("cursor", "pageId")}
    query.update(cursor=cursor.get("before", ""), pageId=cursor.get("pageId", ""))
    return str(URL(request.path).with_query(query))


@routes.get("/error-log")
async def error_log(request: web.Request) -> web.Response:
    q = request.query
    who = session_of(request).caller
    groups = await group_choices(request, api(request))
    wanted = {"groupId": q.get("groupId") or who.group_id, "since": q.get("since", ""), "before": q.get("before", "")}
    errors: dict[str, str] = {}
    window: dict[str, Any] = {}
    for name in ("since", "before"):
        try:
            window[name] = parse_utc(wanted[name])
        except ValueError as exc:
            errors[name] = str(exc)
    entries: list[dict[str, Any]] = []
    following = None
    if not errors:
        query: dict[str, Any] = {"limit": PAGE_SIZE, "since": window["since"], "before": window["before"]}
        if q.get("pageId") and q.get("cursor", "").isdigit():
            query.update(before=q["cursor"], pageId=q["pageId"])
        found = await api(request).get(f"/v2/groups/{wanted['groupId']}/callbacks-not-delivered", **query)
        entries = [{**e, "when": utc_text(e.get("time"))} for e in found["data"]]
        following = next_link(request, found["paging"].get("next"))
    return render(request, "error_log.html", {
        "groups": groups, "wanted": wanted, "errors": errors, "entries": entries,
        "pages": {"previous": None, "next": following}, "continued": bool(q.get("pageId"))},
        status=400 if errors else 200)
