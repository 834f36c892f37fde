"""/device-types: keep-alive, downlink mode, payload grammar, alert e-mail; the contract is fixed at creation."""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss import checks
from oss.auth import Caller, caller
from oss.clock import ms, new_id, now_ms
from oss.context import KEEPALIVE_MIN, pool
from oss.contracts import visible as contract_visible
from oss.errors import BadRequest, Conflict, FieldError, NotFound, json_response
from oss.fields import Fields, fields
from oss.paging import listing, page
from oss.params import INT32, json_body, oid, q_bool, q_choice, q_int, q_oid, q_oids, q_str
from oss.scope import group_in_scope, in_subtree
from oss.shape import compact, expand_links
from oss.validate import validated

routes = web.RouteTableDef()
EXPANDABLE = ("group", "contract", "geolocPayloadConfig")
SORTS = {"id": "t.id", "-id": "t.id DESC", "name": "lower(t.name), t.id", "-name": "lower(t.name) DESC, t.id"}
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


async def scoped_device_type(conn: asyncpg.Connection, who: Caller, ident: str, *,
                             field: str | None = None) -> asyncpg.Record:
    row = await conn.fetchrow(f"SELECT * FROM device_types WHERE id = $2 AND {in_subtree('group_id', '$1')}",
                              who.group_id, ident)
    if row is None:
        raise NotFound(f"{field}: device type {ident} was not found." if field
                       else "The requested device type was not found.")
    return row


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
    contracts = body.get("contracts") or []
    return contracts[0]["id"] if contracts else None


@routes.get("/v2/device-types/")
async def list_device_types(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("device-types")
    pg = page(request)
    expand = fields(request, EXPANDABLE)
    args: list[Any] = [who.group_id]
    where = [in_subtree("t.group_id", "$1")]
    if name := q_str(request, "name"):
        args.append(f"%{name.lower()}%")
        where.append(f"lower(t.name) LIKE ${len(args)}")
    if group_ids := q_oids(request, "groupIds"):
        args.append(group_ids)
        n = len(args)
        where.append(f"(t.group_id = ANY(${n}) OR t.group_id IN (SELECT id FROM groups WHERE path && ${n}::text[]))"
                     if q_bool(request, "deep", default=False) else f"t.group_id = ANY(${n})")
    if contract_id := q_oid(request, "contractId"):
        args.append(contract_id)
        where.append(f"t.contract_id = ${len(args)}")
    if (payload_type := q_int(request, "payloadType", lo=-INT32, hi=INT32)) is not None:
        args.append(payload_type)
        where.append(f"t.payload_type = ${len(args)}")
    order = SORTS[q_choice(request, "sort", tuple(SORTS), "id")]
    async with pool(request).acquire() as conn:
        rows = await conn.fetch(f"SELECT t.* FROM device_types t WHERE {' AND '.join(where)} ORDER BY {order} "
                                f"LIMIT {pg.fetch} OFFSET {pg.offset}", *args)
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
    if values["payload_type"] != CUSTOM_GRAMMAR:
        values["payload_config"] = None
    ident = new_id()
    values.update(id=ident, group_id=body["groupId"], contract_id=contract_id, created_by=who.api_user_id,
                  last_edited_by=who.api_user_id)
    async with pool(request).acquire() as conn:
        await group_in_scope(conn, who.group_id, body["groupId"])
        if not await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM contract_infos c WHERE c.id = $2 "
                                   f"AND {contract_visible()})", who.group_id, contract_id):
            raise BadRequest(FieldError("contractId", f"contract {contract_id} was not found"))
        await conn.execute(f"INSERT INTO device_types({', '.join(values)}) "
                           f"VALUES ({', '.join(f'${i}' for i in range(1, len(values) + 1))})", *values.values())
    return json_response({"id": ident}, 201)


@routes.get("/v2/device-types/{id}")
async def get_device_type(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("device-types")
    expand = fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        row = await scoped_device_type(conn, who, oid(request))
        return json_response((await device_type_bodies(conn, [row], expand))[0])


@routes.put("/v2/device-types/{id}")
async def update_device_type(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("device-types", write=True)
    body = validated(await json_body(request), "deviceTypeUpdate")
    changes = {COLUMNS[k]: v for k, v in body.items() if k in COLUMNS}
    async with pool(request).acquire() as conn, conn.transaction():
        row = await scoped_device_type(conn, who, oid(request))
        errors = semantic_errors({**dict(row), **changes}, request.app[KEEPALIVE_MIN])
        contract_id = contract_of(body)
        if contract_id is not None and contract_id != row["contract_id"]:
            field = "contractId" if body.get("contractId") else "contracts"
            errors.append(FieldError(field, "the contract of a device type cannot change once it is created"))
        if errors:
            raise BadRequest(errors)
        if changes:
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=3))
            await conn.execute(f"UPDATE device_types SET {sets}, last_edited_by = $2, updated_at = now() "
                               f"WHERE id = $1", row["id"], who.api_user_id, *changes.values())
    return web.Response(status=204)


@routes.delete("/v2/device-types/{id}")
async def delete_device_type(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("device-types", write=True)
    async with pool(request).acquire() as conn, conn.transaction():
        row = await scoped_device_type(conn, who, oid(request))
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM devices WHERE device_type_id = $1)", row["id"]):
            raise Conflict("The device type still has devices; transfer or delete them first.")
        await conn.execute("DELETE FROM device_types WHERE id = $1", row["id"])
    return web.Response(status=204)


@routes.put("/v2/device-types/{id}/disengage")
async def disengage_device_type(request: web.Request) -> web.Response:
    """Disengage the sequence number check of every device of the type."""
    who = caller(request)
    who.require("devices", write=True)
    async with pool(request).acquire() as conn:
        row = await scoped_device_type(conn, who, oid(request))
        await conn.execute("UPDATE devices SET disengaged_at = $2, updated_at = now() WHERE device_type_id = $1",
                           row["id"], now_ms())
    return web.Response(status=204)
