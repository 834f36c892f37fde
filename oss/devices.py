"""/devices: create, read, update, delete, disengage, unsubscribe; radio state from device_status."""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss import device_store
from oss.auth import Caller, caller
from oss.clock import ms, now_ms
from oss.context import pool
from oss.errors import BadRequest, Conflict, FieldError, NotFound, json_response
from oss.fields import Fields, fields
from oss.paging import listing, page
from oss.params import DEVICE_ID, device_id, json_body, q_bool, q_choice, q_oid, q_oids, q_str
from oss.scope import fetch_scoped, in_subtree
from oss.shape import compact, expand_links
from oss.tokens import device_state, token_body
from oss.validate import validated

routes = web.RouteTableDef()
DEVICE_EXPANDABLE = ("deviceType", "group", "contract", "productCertificate", "modemCertificate")
DEVICE_SELECT = """SELECT d.*, s.sequence_number, s.trash_sequence_number, s.last_com, s.com_state, s.lqi,
    s.last_computed_location, t.keep_alive FROM devices d
    LEFT JOIN device_status s ON s.device_id = d.id AND s.registration_id = d.registration_id
    LEFT JOIN device_types t ON t.id = d.device_type_id"""
SORTS = {"id": "d.id", "-id": "d.id DESC", "name": "d.name, d.id", "-name": "d.name DESC, d.id",
         "lastCom": "s.last_com NULLS FIRST, d.id", "-lastCom": "s.last_com DESC NULLS LAST, d.id"}
NO, OK, KO, NA, NOT_SEEN = 0, 1, 3, 4, 5


def device_body(r: asyncpg.Record, now: int) -> dict[str, Any]:
    token = token_body(r, now)
    com_state = (r["com_state"] if r["com_state"] is not None else NOT_SEEN) if token and token["state"] == 0 else NA
    missed = None
    if com_state == OK and not r["keep_alive"]:
        com_state = NO  # heard, but its type watches no keep-alive
    elif com_state == KO and r["keep_alive"] and r["last_com"]:
        missed = max(1, (now - r["last_com"]) // (r["keep_alive"] * 1000))
    location = compact({"lat": r["lat"], "lng": r["lng"]})
    return compact({
        "id": r["id"], "name": r["name"], "deviceType": {"id": r["device_type_id"]}, "group": {"id": r["group_id"]},
        "contract": {"id": r["contract_id"]} if r["contract_id"] else None, "pac": r["pac"],
        "prototype": r["prototype"],
        "productCertificate": {"key": r["product_certificate"]} if r["product_certificate"] else None,
        "location": location or None, "lastComputedLocation": r["last_computed_location"],
        "sequenceNumber": r["sequence_number"], "trashSequenceNumber": r["trash_sequence_number"],
        "lastCom": r["last_com"], "lqi": r["lqi"] if r["lqi"] is not None else NA,
        "activationTime": r["activation_time"], "creationTime": ms(r["created_at"]),
        "state": device_state(r, now), "comState": com_state, "comStateMissedPeriods": missed, "token": token,
        "unsubscriptionTime": r["unsubscription_time"], "createdBy": r["created_by"],
        "lastEditionTime": ms(r["updated_at"]), "lastEditedBy": r["last_edited_by"],
        "automaticRenewal": r["automatic_renewal"], "activable": r["activable"],
    })


async def device_bodies(conn: asyncpg.Connection, rows: list[asyncpg.Record], expand: Fields,
                        now: int) -> list[dict[str, Any]]:
    items = [device_body(r, now) for r in rows]
    await expand_links(conn, items, expand, {"deviceType": "deviceType", "group": "group", "contract": "contract"})
    return items


async def scoped_device(conn: asyncpg.Connection, who: Caller, ident: str) -> asyncpg.Record:
    return await fetch_scoped(conn, f"{DEVICE_SELECT} WHERE d.id = $2 AND {in_subtree('d.group_id', '$1')}",
                              who.group_id, ident, what="device")


def raise_row_errors(errors: list[device_store.RowError]) -> None:
    """A single-device operation's row error as the HTTP answer."""
    if not errors:
        return
    error = errors[0]
    if error.message == "device not found":
        raise NotFound("The requested device was not found.")
    if error.message == "device already exists":
        raise Conflict(f"Device {error.entity} already exists.")
    raise BadRequest(FieldError(error.field or "id", error.message))


@routes.get("/v2/devices/")
async def list_devices(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices")
    pg = page(request)
    expand = fields(request, DEVICE_EXPANDABLE)
    args: list[Any] = [who.group_id]
    where = [in_subtree("d.group_id", "$1")]
    if ident := q_str(request, "id"):
        if not DEVICE_ID.fullmatch(ident):
            raise BadRequest(FieldError("id", "must be 1 to 8 hexadecimal characters", "query"))
        args.append(ident.upper())
        where.append(f"d.id = ${len(args)}")
    if group_ids := q_oids(request, "groupIds"):
        args.append(group_ids)
        n = len(args)
        where.append(f"(d.group_id = ANY(${n}) OR d.group_id IN (SELECT id FROM groups WHERE path && ${n}::text[]))"
                     if q_bool(request, "deep", default=False) else f"d.group_id = ANY(${n})")
    if device_type_id := q_oid(request, "deviceTypeId"):
        args.append(device_type_id)
        where.append(f"d.device_type_id = ${len(args)}")
    sort = q_choice(request, "sort", tuple(SORTS), "name")
    for param, op in (("minId", ">="), ("maxId", "<=")):
        if bound := q_str(request, param):
            if not DEVICE_ID.fullmatch(bound):
                raise BadRequest(FieldError(param, "must be 1 to 8 hexadecimal characters", "query"))
            args.append(bound.upper().zfill(8))
            where.append(f"lpad(d.id, 8, '0') {op} ${len(args)}")
    now = now_ms()
    async with pool(request).acquire() as conn:
        rows = await conn.fetch(f"{DEVICE_SELECT} WHERE {' AND '.join(where)} ORDER BY {SORTS[sort]} "
                                f"LIMIT {pg.fetch} OFFSET {pg.offset}", *args)
        return json_response(listing(request, pg, await device_bodies(conn, rows, expand, now)))


@routes.post("/v2/devices/")
async def create_device(request: web.Request) -> web.Response:
    from oss.device_types import scoped_device_type
    who = caller(request)
    who.require("devices", write=True)
    body = validated(await json_body(request), "deviceCreationJob")
    body["id"] = body["id"].upper()
    async with pool(request).acquire() as conn, conn.transaction():
        device_type = await scoped_device_type(conn, who, body["deviceTypeId"], field="deviceTypeId")
        _, errors = await device_store.create(conn, who, device_type, [(1, body)], now_ms())
        raise_row_errors(errors)
    return json_response({"id": body["id"]}, 201)


@routes.get("/v2/devices/{id}")
async def get_device(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices")
    expand = fields(request, DEVICE_EXPANDABLE)
    async with pool(request).acquire() as conn:
        row = await scoped_device(conn, who, device_id(request))
        return json_response((await device_bodies(conn, [row], expand, now_ms()))[0])


@routes.put("/v2/devices/{id}")
async def update_device(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices", write=True)
    body = validated(await json_body(request), "deviceUpdateJob")
    async with pool(request).acquire() as conn, conn.transaction():
        _, errors = await device_store.edit(conn, who, [(1, {**body, "id": device_id(request)})])
        raise_row_errors(errors)
    return web.Response(status=204)


@routes.delete("/v2/devices/{id}")
async def delete_device(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices", write=True)
    async with pool(request).acquire() as conn, conn.transaction():
        _, errors = await device_store.delete(conn, who, [(1, {"id": device_id(request)})])
        raise_row_errors(errors)
    return web.Response(status=204)


@routes.post("/v2/devices/{id}/disengage")
async def disengage_device(request: web.Request) -> web.Response:
    """Accept the device's next sequence number whatever it is (the stream reads `disengaged_at`)."""
    who = caller(request)
    who.require("devices", write=True)
    async with pool(request).acquire() as conn:
        row = await scoped_device(conn, who, device_id(request))
        await conn.execute("UPDATE devices SET disengaged_at = $2, updated_at = now() WHERE id = $1",
                           row["id"], now_ms())
    return web.Response(status=204)


@routes.put("/v2/devices/{id}/unsubscribe")
async def unsubscribe_device(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices", write=True)
    body = validated(await json_body(request), "tokenUnsubscribe")
    async with pool(request).acquire() as conn, conn.transaction():
        _, errors = await device_store.unsubscribe(conn, who, [(1, {**body, "id": device_id(request)})], now_ms())
        raise_row_errors(errors)
    return web.Response(status=204)
