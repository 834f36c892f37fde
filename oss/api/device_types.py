"""/device-types: keep-alive, downlink mode, payload grammar, alert e-mail; the contract is fixed at creation."""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss import checks
from oss.auth import caller
from oss.clock import ms, new_id, now_ms
from oss.context import KEEPALIVE_MIN, pool
from oss.errors import BadRequest, Conflict, FieldError, json_response
from oss.fields import Fields, fields
from oss.paging import listing, page
from oss.params import INT32, json_body, oid, q_bool, q_choice, q_int, q_oid, q_oids, q_str
from oss.shape import compact, expand_links
from oss.storage import contracts, device_types, devices, groups
from oss.validate import validated

routes = web.RouteTableDef()
EXPANDABLE = ("group", "contract", "geolocPayloadConfig")
COLUMNS = {"name": "name", "description": "description", "keepAlive": "keep_alive", "alertEmail": "alert_email",
           "downlinkMode": "downlink_mode", "downlinkDataString": "downlink_data_string",
           "payloadType": "payload_type", "payloadConfig": "payload_config", "automaticRenewal": "automatic_renewal"}
DIRECT, CUSTOM_GRAMMAR = 0, 3


def device_type_body(r: asyncpg.Record) -> dict[str, Any]:
    contract = {"id": r["contract_id"]} if r["contract_id"] else None
    return compact({
        "id": r["id"], "name": r["name"], "description": r["description"], "group": {"id": r["group_id"]},
        "contract": contract, "contracts": [contract] if contract else [], "keepAlive": r["keep_alive"],
        "alertEmail": r["alert_email"], "downlinkMode": r["downlink_mode"],
        "downlinkDataString": r["downlink_data_string"], "payloadType": r["payload_type"],
        "payloadConfig": r["payload_config"], "automaticRenewal": r["automatic_renewal"],
        "creationTime": ms(r["created_at"]), "createdBy": r["created_by"],
        "lastEditionTime": ms(r["updated_at"]), "lastEditedBy": r["last_edited_by"],
    })


async def device_type_bodies(conn: asyncpg.Connection, rows: list[asyncpg.Record], expand: Fields) -> list[dict]:
    items = [device_type_body(r) for r in rows]
    await expand_links(conn, items, expand, {"group": "group", "contract": "contract"})
    return items


def semantic_errors(merged: dict[str, Any], keepalive_min: int) -> list[FieldError]:
    """Rules across fields, checked on the device type as it will be after the change."""
    errors = checks.keepalive_errors(merged.get("keep_alive"), keepalive_min)
    if merged.get("downlink_mode") == DIRECT:
        errors += checks.downlink_string_errors(merged.get("downlink_data_string"))
    if merged.get("payload_type") == CUSTOM_GRAMMAR:
        errors += checks.grammar_errors(merged.get("payload_config"))
    return errors


def contract_of(body: dict[str, Any]) -> str | None:
    if body.get("contractId"):
        return body["contractId"]
    contract_list = body.get("contracts") or []
    return contract_list[0]["id"] if contract_list else None


def contract_field(body: dict[str, Any]) -> str:
    """Where the request named the contract (for error messages)."""
    return "contractId" if body.get("contractId") else "contracts[0].id"


async def check_contract_group(conn: asyncpg.Connection, root: str, contract_id: str, group_id: str,
                               field: str) -> None:
    """The reference's rule: a device type uses a contract of its own group (one the caller may see)."""
    owner = await contracts.group_of_visible(conn, root, contract_id)
    if owner is None:
        raise BadRequest(FieldError(field, f"contract {contract_id} was not found"))
    if owner != group_id:
        raise BadRequest(FieldError(field, f"contract {contract_id} belongs to another group: a device type "
                                           "uses a contract of its own group"))


@routes.get("/v2/device-types/")
async def list_device_types(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("device-types")
    pg = page(request)
    expand = fields(request, EXPANDABLE)
    name, group_ids = q_str(request, "name"), q_oids(request, "groupIds")
    wanted = device_types.Filter(name=name, group_ids=group_ids,
                                 deep=bool(group_ids) and q_bool(request, "deep", default=False),
                                 contract_id=q_oid(request, "contractId"),
                                 payload_type=q_int(request, "payloadType", lo=-INT32, hi=INT32))
    sort = q_choice(request, "sort", tuple(device_types.SORTS), "id")
    async with pool(request).acquire() as conn:
        rows = await device_types.page(conn, who.group_id, pg, wanted, sort)
        return json_response(listing(request, pg, await device_type_bodies(conn, rows, expand)))


@routes.post("/v2/device-types/")
async def create_device_type(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("device-types", write=True)
    body = validated(await json_body(request), "deviceTypeCreate")
    values = {COLUMNS[k]: v for k, v in body.items() if k in COLUMNS}
    values.setdefault("keep_alive", 0)
    values.setdefault("downlink_mode", 2)
    values.setdefault("payload_type", 2)
    errors = semantic_errors(values, request.app[KEEPALIVE_MIN])
    contract_id = contract_of(body)
    if contract_id is None:
        errors.append(FieldError("contractId", "is required (or contracts[0].id)"))
    if errors:
        raise BadRequest(errors)
    assert contract_id is not None  # else it was an error above
    if values["payload_type"] != CUSTOM_GRAMMAR:
        values["payload_config"] = None
    ident = new_id()
    values.update(id=ident, group_id=body["groupId"], contract_id=contract_id, created_by=who.api_user_id,
                  last_edited_by=who.api_user_id)
    async with pool(request).acquire() as conn:
        await groups.scoped(conn, who.group_id, body["groupId"])
        await check_contract_group(conn, who.group_id, contract_id, body["groupId"], contract_field(body))
        await device_types.create(conn, values)
    return json_response({"id": ident}, 201)


@routes.get("/v2/device-types/{id}")
async def get_device_type(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("device-types")
    expand = fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        row = await device_types.scoped(conn, who.group_id, oid(request))
        return json_response((await device_type_bodies(conn, [row], expand))[0])


@routes.put("/v2/device-types/{id}")
async def update_device_type(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("device-types", write=True)
    body = validated(await json_body(request), "deviceTypeUpdate")
    changes = {COLUMNS[k]: v for k, v in body.items() if k in COLUMNS}
    async with pool(request).acquire() as conn, conn.transaction():
        row = await device_types.scoped(conn, who.group_id, oid(request))
        errors = semantic_errors({**dict(row), **changes}, request.app[KEEPALIVE_MIN])
        contract_id = contract_of(body)
        if contract_id is not None and contract_id != row["contract_id"]:
            errors.append(FieldError(contract_field(body), "the contract of a device type cannot change once it "
                                                           "is created"))
        if errors:
            raise BadRequest(errors)
        await device_types.edit(conn, row["id"], changes, edited_by=who.api_user_id)
    return web.Response(status=204)


@routes.delete("/v2/device-types/{id}")
async def delete_device_type(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("device-types", write=True)
    async with pool(request).acquire() as conn, conn.transaction():
        row = await device_types.scoped(conn, who.group_id, oid(request))
        if await device_types.has_devices(conn, row["id"]):
            raise Conflict("The device type still has devices; transfer or delete them first.")
        await device_types.delete(conn, row["id"])
    return web.Response(status=204)


@routes.put("/v2/device-types/{id}/disengage")
async def disengage_device_type(request: web.Request) -> web.Response:
    """Disengage the sequence number check of every device of the type."""
    who = caller(request)
    who.require("devices", write=True)
    async with pool(request).acquire() as conn:
        row = await device_types.scoped(conn, who.group_id, oid(request))
        await devices.disengage_type(conn, row["id"], now_ms())
    return web.Response(status=204)
