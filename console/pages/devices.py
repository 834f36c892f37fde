"""The devices: the list (filters, sort, paging, chosen columns, CSV export), the deleted devices, and a
device's page (identity, token, radio, messages with their receptions and callback statuses, events, a
chart of its radio, its position on the console's map).

Everything is read through the API as the signed-in user (console.context.api): GET /v2/devices/ and its
Backhaul extensions /v2/devices/count, /v2/deleted-devices/, /v2/devices/{id}/events (README "API v2
compatibility"). Only the column choice is the console's own (a user preference).
"""
from __future__ import annotations

from typing import Any

from aiohttp import web
from yarl import URL

from console import device_columns as cols
from console import device_filter as filters
from console import map_view
from console.charts import radio_chart, sample_of
from console.context import api, console_settings, session_of
from console.headers import allow_images_from, finish
from console.map_controls import map_links, parse_view
from console.map_view import Place
from console.render import render
from oss.context import POOL
from oss.storage import console_sessions

routes = web.RouteTableDef()
DEVICE = "/devices/{id:[0-9A-Fa-f]{1,8}}"
PAGE_SIZES = ("20", "50", "100")
DEFAULT_LIMIT = "50"
EXPORT_PAGE = 100
MESSAGES_PAGE = 20
EVENTS_PAGE = 20
# The series pages (console/pages of the series slice) take the list's filter as their query.
TOOLBAR = (("New", "/console/devices/new", False), ("New series", "/console/devices/series/create", True),
           ("Edit series", "/console/devices/series/edit", True),
           ("Transfer series", "/console/devices/series/transfer", True),
           ("Replace series", "/console/devices/series/replace", True),
           ("Delete series", "/console/devices/series/delete", True))
NOWHERE = (0, 0)
DEVICE_MAP_ZOOM = 14   # a device's position alone: streets apart
DEVICE_MAP_PX = (768, 384)


async def chosen_columns(request: web.Request) -> list[cols.Column]:
    prefs = await console_sessions.preferences(request.config_dict[POOL], session_of(request).user_id)
    return cols.chosen(prefs)


async def options(request: web.Request, path: str, resource: str) -> list[dict[str, Any]]:
    """Every item of a list the filter offers as choices; none when the user may not read them."""
    if not session_of(request).caller.can(resource):
        return []
    return [{"id": i["id"], "name": i.get("name") or i["id"]} for i in await api(request).pages(path)]


def with_query(path: str, values: dict[str, str]) -> str:
    qs = filters.query_string(values)
    return f"{path}?{qs}" if qs else path


@routes.get("/devices")
async def device_list(request: web.Request) -> web.StreamResponse:
    query = request.query
    errors: dict[str, str] = {}
    if filters.has_dates(query):
        try:
            raise web.HTTPSeeOther(with_query("/console/devices", filters.from_form(query)))
        except filters.BadDate as bad:
            errors[bad.field] = str(bad)
    wanted = filters.api_filter(query)
    sort = query.get("sort", "name")
    limit = query.get("limit", DEFAULT_LIMIT)
    offset = query.get("offset", "0")
    columns = await chosen_columns(request)
    calls = api(request)
    devices: list[dict[str, Any]] = []
    more, total = False, None
    if not errors:
        listed = await calls.call("GET", "/v2/devices/", query={**wanted, "sort": sort, "limit": limit,
                                                                  "offset": offset, "fields": cols.expand_for(columns)})
        if listed.ok:
            devices = listed.body["data"]
            more = bool(listed.body["paging"].get("next"))
            counted = await calls.call("GET", "/v2/devices/count", query=wanted)
            total = int(counted.body["count"]) if counted.ok else None
        else:
            errors = listed.field_errors() or {"": listed.message}
    here = {**wanted, "sort": sort, "limit": limit}
    step = int(limit) if limit.isdigit() else int(DEFAULT_LIMIT)
    start = int(offset) if offset.isdigit() else 0
    status = 400 if errors else 200
    return render(request, "devices.html", {
        "columns": columns, "devices": devices, "total": total, "errors": errors, "query": query,
        "wanted": wanted, "sort": sort, "limit": limit, "page_sizes": PAGE_SIZES,
        "filter_qs": filters.query_string(wanted),
        "since_value": filters.date_value(wanted.get("lastComSince")) or query.get("lastSeenFrom", ""),
        "before_value": filters.date_value(wanted.get("lastComBefore")) or query.get("lastSeenTo", ""),
        "states": cols.STATES, "groups": await options(request, "/v2/groups/", "groups"),
        "device_types": await options(request, "/v2/device-types/", "device-types"),
        "sort_link": lambda key: with_query("/console/devices", {**here, "sort": f"-{key}" if sort == key else key}),
        "previous": with_query("/console/devices", {**here, "offset": str(max(0, start - step))}) if start else None,
        "next": with_query("/console/devices", {**here, "offset": str(start + step)}) if more else None,
        "first_shown": start + 1, "export": with_query("/console/devices/export.csv", {**wanted, "sort": sort}),
        "toolbar": [(label, with_query(href, wanted) if takes_filter else href)
                    for label, href, takes_filter in TOOLBAR],
        "can_write": session_of(request).caller.can("devices", write=True),
    }, status=status)


@routes.get("/devices/columns")
async def columns_page(request: web.Request) -> web.Response:
    keys = [c.key for c in await chosen_columns(request)]
    return render(request, "devices_columns.html", {"all": cols.COLUMNS.values(), "ticked": keys, "error": "",
                                                    "limit": cols.MAX_COLUMNS, "back": back_to_list(request)})


def back_to_list(request: web.Request) -> str:
    """The list with the filter the user came from (`back`, a console path), else the plain list."""
    back = request.query.get("back", "")
    return back if back.startswith("/console/devices") and "//" not in back else "/console/devices"


@routes.post("/devices/columns")
async def save_columns(request: web.Request) -> web.StreamResponse:
    """Remember the user's columns (at most `MAX_COLUMNS`: a choice of more is refused, and said why)."""
    form = await request.post()
    keys = [str(v) for v in form.getall("column", [])]
    back = str(form.get("back", "/console/devices"))
    back = back if back.startswith("/console/devices") and "//" not in back else "/console/devices"
    problem = cols.column_problem(keys)
    if problem:
        return render(request, "devices_columns.html", {"all": cols.COLUMNS.values(), "ticked": keys,
                                                        "error": f"Columns: {problem}.", "limit": cols.MAX_COLUMNS,
                                                        "back": back}, status=400)
    await console_sessions.set_preference(request.config_dict[POOL], session_of(request).user_id,
                                          cols.PREFERENCE, keys)
    raise web.HTTPSeeOther(back)


@routes.get("/devices/export.csv")
async def export(request: web.Request) -> web.StreamResponse:
    """The filtered list, every page, in the chosen columns: written as the API's pages arrive."""
    columns = await chosen_columns(request)
    calls = api(request)
    query = {**filters.api_filter(request.query), "sort": request.query.get("sort", "name"),
             "limit": EXPORT_PAGE, "fields": cols.expand_for(columns)}
    answer = await calls.get("/v2/devices/", **query)  # a refused filter is the error page, before any byte
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": 'attachment; filename="devices.csv"'})
    finish(request, response)
    await response.prepare(request)
    await response.write(cols.csv_header(columns).encode())
    while True:
        await response.write(cols.csv_rows(answer.get("data", []), columns).encode())
        following = (answer.get("paging") or {}).get("next")
        if not following:
            break
        nxt = URL(following)
        answer = await calls.get(nxt.path, **dict(nxt.query))
    await response.write_eof()
    return response


@routes.get("/devices/deleted")
async def deleted_list(request: web.Request) -> web.Response:
    ident = request.query.get("id", "").strip()
    offset = request.query.get("offset", "0")
    answer = await api(request).call("GET", "/v2/deleted-devices/", query={"id": ident, "offset": offset,
                                                                           "limit": DEFAULT_LIMIT})
    start = int(offset) if offset.isdigit() else 0
    step = int(DEFAULT_LIMIT)
    rows = answer.body["data"] if answer.ok else []
    return render(request, "devices_deleted.html", {
        "rows": rows, "ident": ident, "error": "" if answer.ok else (answer.message or "; ".join(
            f"{k}: {v}" for k, v in answer.field_errors().items())), "when": cols.when,
        "groups": {g["id"]: g["name"] for g in await options(request, "/v2/groups/", "groups")},
        "previous": with_query("/console/devices/deleted", {"id": ident, "offset": str(max(0, start - step))})
        if start else None,
        "next": with_query("/console/devices/deleted", {"id": ident, "offset": str(start + step)})
        if answer.ok and answer.body["paging"].get("next") else None}, status=200 if answer.ok else 400)


@routes.get(DEVICE)
async def device_page(request: web.Request) -> web.Response:
    ident = request.match_info["id"].upper()
    calls, who = api(request), session_of(request).caller
    device = await calls.get(f"/v2/devices/{ident}", fields="deviceType(name),group(name),contract(name)")
    page_query = {k: request.query[k] for k in ("before", "pageId") if request.query.get(k)}
    messages = await calls.call("GET", f"/v2/devices/{ident}/messages", query={
        "limit": MESSAGES_PAGE, "fields": "rinfos(rep,baseStation(name))", **page_query})
    events = await calls.call("GET", f"/v2/devices/{ident}/events", query={"limit": EVENTS_PAGE})
    listed = messages.body["data"] if messages.ok else []
    older = None
    if messages.ok and messages.body["paging"].get("next"):
        nxt = URL(messages.body["paging"]["next"])
        older = with_query(f"/console/devices/{ident}", {k: nxt.query.get(k, "") for k in ("before", "pageId")})
    place = device.get("location") or {}
    fixed = (place.get("lat"), place.get("lng")) != NOWHERE and place.get("lat") is not None
    return render(request, "device.html", {
        "d": device, "ident": ident, "when": cols.when, "state": cols.COLUMNS["state"].value(device),
        "com_state": cols.COLUMNS["comState"].value(device), "lqi": cols.COLUMNS["lqi"].value(device),
        "token": cols.token(device), "location": cols.location(device), "fixed": fixed,
        "show_pac": who.can("devices", write=True), "lqis": cols.LQIS,
        "messages": listed, "messages_error": "" if messages.ok else messages.message, "older": older,
        "newest": f"/console/devices/{ident}" if page_query else None,
        "events": events.body["data"] if events.ok else [], "events_error": "" if events.ok else events.message,
        "event_details": event_details,
        "chart": radio_chart([sample_of(m) for m in listed]),
    })


def event_details(event: dict[str, Any]) -> str:
    """An event's own fields, as `name: value` pairs (the head, shown in columns, left out)."""
    return ", ".join(f"{k}: {v}" for k, v in event.items() if k not in ("id", "type", "time"))


@routes.get(DEVICE + "/map")
async def device_map(request: web.Request) -> web.Response:
    """The device's fixed position (and its last computed one) on the console's slippy map (the service
    map's view: console/map_view.py), fitted to them; the base layer as the service map's."""
    ident = request.match_info["id"].upper()
    device = await api(request).get(f"/v2/devices/{ident}")
    places: list[Place] = []
    place = device.get("location") or {}
    if place.get("lat") is not None and (place.get("lat"), place.get("lng")) != NOWHERE:
        places.append(Place("Fixed position", float(place["lat"]), float(place["lng"]), "fixed"))
    computed = device.get("lastComputedLocation") or {}
    if computed.get("lat") is not None and computed.get("lng") is not None:
        places.append(Place("Last computed position", float(computed["lat"]), float(computed["lng"]), "computed"))
    errors: dict[str, str] = {}
    view = parse_view(request.query, errors, *DEVICE_MAP_PX) or map_view.fit(
        [(p.lat, p.lng) for p in places], *DEVICE_MAP_PX, max_zoom=DEVICE_MAP_ZOOM)
    base_url = console_settings(request).map_base_url
    response = render(request, "device_map.html", {
        "d": device, "ident": ident, "places": places, "errors": errors,
        "picture": map_view.picture(view, places, base_url=base_url),
        "links": map_links(f"/console/devices/{ident}/map", {}, view, "Fit to the positions")},
        status=400 if errors else 200)
    if base_url:
        allow_images_from(response, map_view.base_origin(base_url))
    return response
