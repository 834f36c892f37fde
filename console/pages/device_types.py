"""Device types: the list (filter by name and group, paged, sorted), a device type's page (its fields, edit,
delete) and the creation form; payloadConfig is checked while it is typed, by the API's own grammar check."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from console.callback_form import Problem, form_texts, placed
from console.context import api
from console.render import render
from console.times import utc_text
from oss import checks

routes = web.RouteTableDef()
PAGE = 25
SORTS = {"name": "Name (A to Z)", "-name": "Name (Z to A)", "id": "Oldest first", "-id": "Newest first"}
DOWNLINK_MODES = {0: "DIRECT", 1: "CALLBACK", 2: "NONE", 3: "MANAGED"}
PAYLOAD_TYPES = {2: "Regular (raw payload)", 3: "Custom grammar", 4: "Geolocation", 5: "ASCII"}
EDITABLE = ("name", "description", "keepAlive", "alertEmail", "downlinkMode", "downlinkDataString", "payloadType",
            "payloadConfig")
NUMBERS = ("keepAlive", "downlinkMode", "payloadType")


def _int(value: str | None, default: int = 0) -> int:
    try:
        return max(0, int(value or default))
    except ValueError:
        return default


def type_body(form: Any, *, creating: bool) -> dict[str, Any]:
    """The API body of the device type form; on an edit an emptied optional text clears the field."""
    body: dict[str, Any] = {}
    for name in EDITABLE:
        value = str(form.get(name, "")).strip() if name != "payloadConfig" else str(form.get(name, ""))
        if name in NUMBERS:
            if value:
                body[name] = int(value) if value.lstrip("-").isdigit() else value
        elif value:
            body[name] = value
        elif not creating and name not in ("name",):
            body[name] = None
    if creating:
        body["groupId"] = str(form.get("groupId", ""))
        if form.get("contractId"):
            body["contractId"] = str(form["contractId"])
    body["automaticRenewal"] = form.get("automaticRenewal") == "on"
    return body


def grammar_problems(form: Any) -> list[Problem]:
    """payloadConfig's problems, as the API finds them, placed in the text (only for a custom grammar)."""
    if str(form.get("payloadType", "")) != "3":
        return []
    values = {"payloadConfig": str(form.get("payloadConfig", ""))}
    return [placed(e.field, e.message, e.position, values) for e in checks.grammar_errors(values["payloadConfig"])]


async def _choices(request: web.Request) -> tuple[list[Any], list[Any]]:
    groups = await api(request).pages("/v2/groups/")
    contracts = await api(request).pages("/v2/contract-infos/")
    return groups, contracts


@routes.get("/device-types")
async def list_page(request: web.Request) -> web.Response:
    q = request.query
    offset = _int(q.get("offset"))
    sort = q.get("sort", "name") if q.get("sort") in SORTS else "name"
    group = q.get("group", "")
    answer = await api(request).get("/v2/device-types/", name=q.get("name", "").strip(), limit=PAGE, offset=offset,
                                     sort=sort, groupIds=group or None, deep=bool(group) or None,
                                     fields="group(name)")
    items = answer.get("data", [])
    groups = await api(request).pages("/v2/groups/")
    return render(request, "device_types.html", {
        "items": items, "groups": groups, "sorts": SORTS, "filters": {"name": q.get("name", ""), "group": group,
                                                                      "sort": sort},
        "offset": offset, "page": PAGE, "more": bool((answer.get("paging") or {}).get("next")),
        "query": {k: v for k, v in {"name": q.get("name", ""), "group": group, "sort": sort}.items() if v},
        "can_write": api(request).who.can("device-types", write=True)})


async def _form_page(request: web.Request, values: dict[str, Any], errors: dict[str, str], *, creating: bool,
                     device_type: dict[str, Any] | None = None, status: int = 200, notice: str = "") -> web.Response:
    groups, contracts = await _choices(request) if creating else ([], [])
    return render(request, "device_type.html", {
        "creating": creating, "item": device_type, "values": values, "errors": errors, "groups": groups,
        "contracts": contracts, "downlink_modes": DOWNLINK_MODES, "payload_types": PAYLOAD_TYPES,
        "problems": grammar_problems(values), "notice": notice,
        "can_write": api(request).who.can("device-types", write=True),
        "can_callbacks": api(request).who.can("callbacks")}, status=status)


@routes.get("/device-types/new")
async def new_page(request: web.Request) -> web.Response:
    return await _form_page(request, {"payloadType": "2", "downlinkMode": "2", "keepAlive": "0",
                                      "groupId": api(request).who.group_id}, {}, creating=True)


@routes.post("/device-types/new")
async def create(request: web.Request) -> web.StreamResponse:
    form = form_texts(await request.post())
    answer = await api(request).call("POST", "/v2/device-types/", json=type_body(form, creating=True))
    if not answer.ok:
        values = form
        errors = answer.field_errors() or {"": answer.message}
        return await _form_page(request, values, errors, creating=True, status=answer.status)
    raise web.HTTPSeeOther(f"/console/device-types/{answer.body['id']}?notice=created")


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "created": utc_text(item.get("creationTime")), "edited": utc_text(item.get("lastEditionTime"))}


def _values(item: dict[str, Any]) -> dict[str, str]:
    values = {name: "" if item.get(name) is None else str(item[name]) for name in EDITABLE}
    values["automaticRenewal"] = "on" if item.get("automaticRenewal") else ""
    return values


@routes.get("/device-types/{id}")
async def type_page(request: web.Request) -> web.Response:
    item = await api(request).get(f"/v2/device-types/{request.match_info['id']}",
                                  fields="group(name),contract(name)")
    notice = {"created": "Device type created.", "saved": "Saved."}.get(request.query.get("notice", ""), "")
    return await _form_page(request, _values(item), {}, creating=False, device_type=_shown(item), notice=notice)


@routes.post("/device-types/{id}")
async def update(request: web.Request) -> web.StreamResponse:
    ident = request.match_info["id"]
    item = await api(request).get(f"/v2/device-types/{ident}", fields="group(name),contract(name)")
    form = form_texts(await request.post())
    answer = await api(request).call("PUT", f"/v2/device-types/{ident}", json=type_body(form, creating=False))
    if not answer.ok:
        values = form
        return await _form_page(request, values, answer.field_errors() or {"": answer.message}, creating=False,
                                device_type=_shown(item), status=answer.status)
    raise web.HTTPSeeOther(f"/console/device-types/{ident}?notice=saved")


@routes.post("/device-types/{id}/delete")
async def delete(request: web.Request) -> web.StreamResponse:
    ident = request.match_info["id"]
    answer = await api(request).call("DELETE", f"/v2/device-types/{ident}")
    if not answer.ok:
        item = await api(request).get(f"/v2/device-types/{ident}", fields="group(name),contract(name)")
        return await _form_page(request, _values(item), {"": answer.message}, creating=False,
                                device_type=_shown(item), status=answer.status)
    raise web.HTTPSeeOther("/console/device-types")


@routes.post("/device-types-check/payload-config")
async def check_payload_config(request: web.Request) -> web.Response:
    """Live validation of a payloadConfig (htmx): the API's grammar check, its error placed in the text."""
    form = form_texts(await request.post())
    return render(request, "fragments/problems.html", {"problems": grammar_problems(form), "checked": True,
                                                       "target": "payload-problems"})
