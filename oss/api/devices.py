"""/devices: create, read, update, delete, disengage, unsubscribe; radio state from device_status.

Also the devices holding a token of a contract (`/contract-infos/{id}/devices`).
"""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss import device_operations
from oss.auth import caller
from oss.clock import ms, now_ms
from oss.context import pool
from oss.errors import BadRequest, Conflict, FieldError, NotFound, json_response
from oss.fields import Fields, fields
from oss.paging import listing, page
from oss.params import (
    DEVICE_ID,
    device_id,
    json_body,
    oid,
    q_bool,
    q_choice,
    q_int,
    q_ints,
    q_oid,
    q_oids,
    q_str,
)
from oss.shape import compact, expand_links
from oss.storage import contracts, device_types, devices
from oss.tokens import OFF_CONTRACT, device_state, token_body
from oss.tokens import OK as OK_TOKEN
from oss.validate import validated

routes = web.RouteTableDef()
EXPANDABLE = ("deviceType", "group", "contract", "productCertificate", "modemCertificate")
NO, OK, KO, NA, NOT_SEEN = 0, 1, 3, 4, 5
# Defaults for what Backhaul has no concept of (README "API v2 compatibility").
MESSAGE_MODULO = 4096  # sequence numbers are 12-bit on the radio
NOWHERE = {"lat": 0.0, "lng": 0.0}  # no fixed position: the reference's creation default
ALLOWED, NOT_ALLOWED, ENDED = 0, 1, 3  # automaticRenewalStatus (2 RENEWED: Backhaul renews no token)
NO_TOKEN = {"state": OFF_CONTRACT, "detailMessage": "Off Contract"}
TOKEN_TEXT = {OK_TOKEN: "Valid", OFF_CONTRACT: "Off Contract"}


def com_state_of(r: asyncpg.Record, token: dict[str, Any] | None, now: int) -> tuple[int, int | None]:
    """comState, and how many keep-alive periods were missed when it is KO."""
    com_state = (r["com_state"] if r["com_state"] is not None else NOT_SEEN) if token and token["state"] == 0 else NA
    if com_state == OK and not r["keep_alive"]:
        return NO, None  # heard, but its type watches no keep-alive
    if com_state == KO and r["keep_alive"] and r["last_com"]:
        return com_state, max(1, (now - r["last_com"]) // (r["keep_alive"] * 1000))
    return com_state, None


def renewal_status(r: asyncpg.Record, token: dict[str, Any] | None) -> int:
    """automaticRenewalStatus: ENDED once the token is over, else ALLOWED or NOT_ALLOWED."""
    if token is not None and token["state"] == OFF_CONTRACT:
        return ENDED
    return ALLOWED if r["automatic_renewal"] else NOT_ALLOWED


def last_computed_location(location: dict[str, Any] | None) -> dict[str, Any] | None:
    """The reference's `lastComputedLocation` (`sourceCode`) from the stored computed location."""
    if not location or location.get("lat") is None:
        return None
    return compact({"lat": location["lat"], "lng": location.get("lng"), "radius": location.get("radius"),
                    "sourceCode": location.get("source")})


def device_body(r: asyncpg.Record, now: int) -> dict[str, Any]:
    """A device with every field of the reference's device model (defaults in README "API v2 compatibility")."""
    token = token_body(r, now)
    com_state, missed = com_state_of(r, token, now)
    contract = r["contract_id"] or r["type_contract_id"]
    author = r["created_by"] or ""
    return compact({
        "id": r["id"], "name": r["name"] or r["id"], "deviceType": {"id": r["device_type_id"]},
        "group": {"id": r["group_id"]}, "contract": {"id": contract} if contract else None, "pac": r["pac"],
        "satelliteCapable": False, "repeater": False, "messageModulo": MESSAGE_MODULO, "prototype": r["prototype"],
        "productCertificate": compact({"key": r["product_certificate"]}), "modemCertificate": {},
        "location": compact({"lat": r["lat"], "lng": r["lng"]}) or dict(NOWHERE),
        "lastComputedLocation": last_computed_location(r["last_computed_location"]),
        "sequenceNumber": r["sequence_number"] or 0, "trashSequenceNumber": r["trash_sequence_number"] or 0,
        "lastCom": r["last_com"] or 0, "lqi": r["lqi"] if r["lqi"] is not None else NA,
        "activationTime": r["activation_time"], "creationTime": ms(r["created_at"]),
        "state": device_state(r, now), "comState": com_state, "comStateMissedPeriods": missed,
        "token": {**token, "detailMessage": TOKEN_TEXT.get(token["state"], "Invalid")} if token else dict(NO_TOKEN),
        "unsubscriptionTime": r["unsubscription_time"], "createdBy": author,
        "lastEditionTime": ms(r["updated_at"]), "lastEditedBy": r["last_edited_by"] or author,
        "automaticRenewal": r["automatic_renewal"], "automaticRenewalStatus": renewal_status(r, token),
        "activable": r["activable"],
    })


async def device_bodies(conn: asyncpg.Connection, rows: list[asyncpg.Record], expand: Fields,
                        now: int) -> list[dict[str, Any]]:
    items = [device_body(r, now) for r in rows]
    await expand_links(conn, items, expand, {"deviceType": "deviceType", "group": "group", "contract": "contract"})
    return items


def raise_row_errors(errors: list[device_operations.RowError]) -> None:
    """A single-device operation's row error as the HTTP answer."""
    if not errors:
        return
    error = errors[0]
    if error.message == "device not found":
        raise NotFound("The requested device was not found.")
    if error.message == "device already exists":
        raise Conflict(f"Device {error.entity} already exists.")
    raise BadRequest(FieldError(error.field or "id", error.message))


def hex_id(request: web.Request, name: str) -> str | None:
    """A device id (or bound) from the query, upper case."""
    value = q_str(request, name)
    if value is None:
        return None
    if not DEVICE_ID.fullmatch(value):
        raise BadRequest(FieldError(name, "must be 1 to 8 hexadecimal characters", "query"))
    return value.upper()


DEVICE_STATES = range(0, 8)  # OK, DEAD, OFF_CONTRACT, DISABLED, WARN, DELETED, SUSPENDED, NOT_ACTIVABLE


def device_filter(request: web.Request, now: int) -> devices.Filter:
    """The filter of GET /v2/devices/ (and /v2/devices/count) from its query parameters."""
    group_ids = q_oids(request, "groupIds")
    states = q_ints(request, "state")
    for state in states:
        if state not in DEVICE_STATES:
            raise BadRequest(FieldError("state", f"{state} is not a device state (0 to 7)", "query"))
    since = q_int(request, "lastComSince", lo=0, hi=2**53)
    before = q_int(request, "lastComBefore", lo=0, hi=2**53)
    if since is not None and before is not None and before <= since:
        raise BadRequest(FieldError("lastComBefore", "must be after lastComSince", "query"))
    return devices.Filter(ident=hex_id(request, "id"), group_ids=group_ids,
                          deep=bool(group_ids) and q_bool(request, "deep", default=False),
                          device_type_id=q_oid(request, "deviceTypeId"),
                          min_id=hex_id(request, "minId"), max_id=hex_id(request, "maxId"),
                          name=q_str(request, "name", max_length=100), states=states,
                          last_com_since=since, last_com_before=before, now=now)


@routes.get("/v2/devices/")
async def list_devices(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices")
    pg = page(request)
    expand = fields(request, EXPANDABLE)
    sort = q_choice(request, "sort", tuple(devices.SORTS), "name")
    now = now_ms()
    wanted = device_filter(request, now)
    async with pool(request).acquire() as conn:
        rows = await devices.page(conn, who.group_id, pg, wanted, sort)
        return json_response(listing(request, pg, await device_bodies(conn, rows, expand, now)))


@routes.get("/v2/devices/count")
async def count_devices(request: web.Request) -> web.Response:
    """Backhaul extension: how many devices GET /v2/devices/ lists over all its pages with the same filters."""
    who = caller(request)
    who.require("devices")
    wanted = device_filter(request, now_ms())
    async with pool(request).acquire() as conn:
        return json_response({"count": await devices.count(conn, who.group_id, wanted)})


@routes.get("/v2/deleted-devices/")
async def deleted_devices(request: web.Request) -> web.Response:
    """Backhaul extension: the devices deleted from the caller's groups, the last deleted first (their
    history is purged: only the id, the group and the times are kept)."""
    who = caller(request)
    who.require("devices")
    pg = page(request)
    async with pool(request).acquire() as conn:
        rows = await devices.page_deleted(conn, who.group_id, pg, ident=hex_id(request, "id"))
    items = [{"id": r["id"], "group": {"id": r["group_id"]}, "creationTime": r["creation_time"],
              "deletionTime": r["deletion_time"]} for r in rows]
    return json_response(listing(request, pg, items))


@routes.post("/v2/devices/")
async def create_device(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices", write=True)
    body = validated(await json_body(request), "deviceCreationJob")
    body["id"] = body["id"].upper()
    async with pool(request).acquire() as conn, conn.transaction():
        device_type = await device_types.scoped(conn, who.group_id, body["deviceTypeId"], field="deviceTypeId")
        _, errors = await device_operations.create(conn, who, device_type, [(1, body)], now_ms())
        raise_row_errors(errors)
    return json_response({"id": body["id"]}, 201)


@routes.get("/v2/devices/{id}")
async def get_device(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices")
    expand = fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        row = await devices.scoped(conn, who.group_id, device_id(request))
        return json_response((await device_bodies(conn, [row], expand, now_ms()))[0])


@routes.put("/v2/devices/{id}")
async def update_device(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices", write=True)
    body = validated(await json_body(request), "deviceUpdateJob")
    async with pool(request).acquire() as conn, conn.transaction():
        _, errors = await device_operations.edit(conn, who, [(1, {**body, "id": device_id(request)})])
        raise_row_errors(errors)
    return web.Response(status=204)


@routes.delete("/v2/devices/{id}")
async def delete_device(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices", write=True)
    async with pool(request).acquire() as conn, conn.transaction():
        _, errors = await device_operations.delete(conn, who, [(1, {"id": device_id(request)})])
        raise_row_errors(errors)
    return web.Response(status=204)


@routes.post("/v2/devices/{id}/disengage")
async def disengage_device(request: web.Request) -> web.Response:
    """Accept the device's next sequence number whatever it is (the stream reads `disengaged_at`)."""
    who = caller(request)
    who.require("devices", write=True)
    async with pool(request).acquire() as conn:
        row = await devices.scoped(conn, who.group_id, device_id(request))
        await devices.edit(conn, row["id"], {"disengaged_at": now_ms()})
    return web.Response(status=204)


@routes.put("/v2/devices/{id}/unsubscribe")
async def unsubscribe_device(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices", write=True)
    body = validated(await json_body(request), "tokenUnsubscribe")
    async with pool(request).acquire() as conn, conn.transaction():
        _, errors = await device_operations.unsubscribe(conn, who, [(1, {**body, "id": device_id(request)})],
                                                        now_ms())
        raise_row_errors(errors)
    return web.Response(status=204)


@routes.get("/v2/contract-infos/{id}/devices")
async def contract_devices(request: web.Request) -> web.Response:
    """The devices of the caller's groups holding a live token of a contract it may see."""
    who = caller(request)
    who.require("devices")
    pg = page(request)
    expand = fields(request, EXPANDABLE)
    now = now_ms()
    contract_id, device_type_id = oid(request), q_oid(request, "deviceTypeId")
    async with pool(request).acquire() as conn:
        await contracts.visible_to(conn, who.group_id, contract_id, now_ms())
        rows = await devices.page_on_contract(conn, who.group_id, pg, contract_id, now, device_type_id=device_type_id)
        return json_response(listing(request, pg, await device_bodies(conn, rows, expand, now)))
