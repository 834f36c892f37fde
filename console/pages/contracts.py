"""Contracts: the list with each one's tokens (in use, used, the maximum), a contract's page with the devices
holding one of its tokens (paged), and creating and editing them for sessions holding contracts:write
(Backhaul's contract writes, README "Contracts"), all through the API as the session's caller."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from console.admin_support import PAGE_SIZE, group_choices, offset_of, page_links, text
from console.context import api, session_of
from console.render import page_error, render
from console.times import utc_text

routes = web.RouteTableDef()


def number(raw: str) -> Any:
    """A form's whole number as an int (anything else as typed, so the API names the field and the reason)."""
    return int(raw) if raw.lstrip("-").isdigit() and len(raw) < 12 else raw


@routes.get("/contracts")
async def contract_list(request: web.Request) -> web.Response:
    offset = offset_of(request)
    found = await api(request).get("/v2/contract-infos/", limit=PAGE_SIZE, offset=offset, fields="group(name)")
    return render(request, "contracts.html", {
        "contracts": found["data"], "pages": page_links(request, offset, bool(found["paging"].get("next"))),
        "can_write": session_of(request).caller.can("contracts", write=True)})


def _new_form(request: web.Request, groups: list[Any], values: dict[str, Any], errors: dict[str, str],
              message: str = "", status: int = 200) -> web.Response:
    return render(request, "contract_new.html", {"groups": groups, "values": values, "errors": errors,
                                                 "message": message}, status=status)


@routes.get("/contracts/new")
async def new_contract_page(request: web.Request) -> web.Response:
    values = {"name": "", "groupId": "", "maxTokens": "0", "tokenDuration": "12"}
    return _new_form(request, await group_choices(request, api(request)), values, {})


@routes.post("/contracts/new")
async def create_contract(request: web.Request) -> web.Response:
    form = await request.post()
    values = {k: text(form, k) for k in ("name", "groupId", "maxTokens", "tokenDuration")}
    body = {"name": values["name"], "groupId": values["groupId"], "maxTokens": number(values["maxTokens"]),
            "tokenDuration": number(values["tokenDuration"])}
    answer = await api(request).call("POST", "/v2/contract-infos/", json=body)
    if answer.ok:
        raise web.HTTPSeeOther(f"/console/contracts/{answer.body['id']}?done=created")
    return _new_form(request, await group_choices(request, api(request)), values, answer.field_errors(),
                     answer.message, answer.status)


async def _contract_page(request: web.Request, ident: str, *, errors: dict[str, str] | None = None,
                         message: str = "", status: int = 200) -> web.Response:
    contract = await api(request).get(f"/v2/contract-infos/{ident}", fields="group(name)")
    who = session_of(request).caller
    offset, devices, has_next = offset_of(request), None, False
    if who.can("devices"):
        found = await api(request).get(f"/v2/contract-infos/{ident}/devices", limit=PAGE_SIZE, offset=offset)
        devices, has_next = found["data"], bool(found["paging"].get("next"))
    return render(request, "contract.html", {
        "contract": contract, "devices": devices, "pages": page_links(request, offset, has_next),
        "can_write": who.can("contracts", write=True), "errors": errors or {}, "message": message,
        "done": request.query.get("done", ""), "utc": utc_text}, status=status)


@routes.get("/contracts/{id}")
async def contract_page(request: web.Request) -> web.Response:
    return await _contract_page(request, request.match_info["id"])


@routes.post("/contracts/{id}/edit")
async def edit_contract(request: web.Request) -> web.Response:
    ident, form = request.match_info["id"], await request.post()
    body = {"name": text(form, "name"), "maxTokens": number(text(form, "maxTokens"))}
    answer = await api(request).call("PUT", f"/v2/contract-infos/{ident}", json=body)
    if answer.ok:
        raise web.HTTPSeeOther(f"/console/contracts/{ident}?done=saved")
    if answer.status in (403, 404):
        return page_error(request, answer.status, answer.message)
    return await _contract_page(request, ident, errors=answer.field_errors(), message=answer.message,
                                status=answer.status)
