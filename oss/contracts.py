"""/contract-infos: order lines and their tokens (maxTokens, tokensInUse, tokensUsed).

A caller sees the contracts of its subtree and of its ancestors (a contract
bought higher up serves the groups below). API v2 has no contract writes;
Backhaul adds POST, PUT and DELETE for operators holding `contracts:write`,
on contracts of their own subtree.
"""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import Caller, caller
from oss.clock import ms, new_id, now_ms
from oss.context import pool
from oss.devices import DEVICE_EXPANDABLE, device_bodies, DEVICE_SELECT
from oss.errors import Conflict, json_response
from oss.fields import Fields, fields
from oss.paging import listing, page
from oss.params import INT32, json_body, oid, q_bool, q_int, q_list, q_oid, q_str
from oss.scope import fetch_scoped, group_in_scope, in_subtree
from oss.shape import compact, expand_links, linked, pick
from oss.tokens import in_use
from oss.validate import validated

routes = web.RouteTableDef()
EXPANDABLE = ("group", "order", "blacklistedTerritories")
COLUMNS = {
    "name": "name", "activationEndTime": "activation_end_time", "communicationEndTime": "communication_end_time",
    "bidir": "bidir", "highPriorityDownlink": "high_priority_downlink", "maxUplinkFrames": "max_uplink_frames",
    "maxDownlinkFrames": "max_downlink_frames", "maxTokens": "max_tokens", "automaticRenewal": "automatic_renewal",
    "renewalDuration": "renewal_duration", "options": "options", "orderName": "order_name",
    "blacklistedTerritories": "blacklisted_territories", "contractId": "contract_id", "userId": "user_id",
    "orderId": "order_id", "pricingModel": "pricing_model", "startTime": "start_time", "timezone": "timezone",
    "subscriptionPlan": "subscription_plan", "tokenDuration": "token_duration",
}
SELECT = f"""SELECT c.*, (SELECT count(*) FROM devices d WHERE d.contract_id = c.id AND {in_use(now='$2')})
    AS tokens_in_use FROM contract_infos c"""


def visible(param: str = "$1") -> str:
    """SQL: the contract's group is in the caller's subtree or above the caller's group."""
    return (f"({in_subtree('c.group_id', param)} OR "
            f"c.group_id IN (SELECT unnest(path) FROM groups WHERE id = {param}))")


def contract_body(r: asyncpg.Record) -> dict[str, Any]:
    return compact({
        "id": r["id"], "name": r["name"], "group": {"id": r["group_id"]},
        "order": compact({"id": r["order_id"], "name": r["order_name"]}), "contractId": r["contract_id"],
        "userId": r["user_id"], "pricingModel": r["pricing_model"], "subscriptionPlan": r["subscription_plan"],
        "startTime": r["start_time"], "activationEndTime": r["activation_end_time"],
        "communicationEndTime": r["communication_end_time"], "timezone": r["timezone"],
        "tokenDuration": r["token_duration"], "maxTokens": r["max_tokens"], "tokensInUse": r["tokens_in_use"],
        "tokensUsed": r["tokens_used"], "bidir": r["bidir"], "highPriorityDownlink": r["high_priority_downlink"],
        "maxUplinkFrames": r["max_uplink_frames"], "maxDownlinkFrames": r["max_downlink_frames"],
        "automaticRenewal": r["automatic_renewal"], "renewalDuration": r["renewal_duration"],
        "options": r["options"], "blacklistedTerritories": [{"id": g} for g in r["blacklisted_territories"]],
        "createdBy": r["created_by"], "creationTime": ms(r["created_at"]), "lastEditionTime": ms(r["updated_at"]),
    })


async def contract_bodies(conn: asyncpg.Connection, rows: list[asyncpg.Record], expand: Fields) -> list[dict]:
    items = [contract_body(r) for r in rows]
    await expand_links(conn, items, expand, {"group": "group"})
    if "blacklistedTerritories" in expand:
        wanted = expand["blacklistedTerritories"].get("group", {})
        found = await linked(conn, "group", (g["id"] for i in items for g in i["blacklistedTerritories"]))
        for item in items:
            item["blacklistedTerritories"] = [pick(found.get(g["id"], g), wanted) for g in item["blacklistedTerritories"]]
    return items


async def visible_contract(conn: asyncpg.Connection, who: Caller, ident: str) -> asyncpg.Record:
    return await fetch_scoped(conn, f"{SELECT} WHERE c.id = $3 AND {visible()}", who.group_id, now_ms(), ident,
                              what="contract")


async def own_contract(conn: asyncpg.Connection, who: Caller, ident: str) -> asyncpg.Record:
    return await fetch_scoped(conn, f"{SELECT} WHERE c.id = $3 AND {in_subtree('c.group_id', '$1')}",
                              who.group_id, now_ms(), ident, what="contract")


@routes.get("/v2/contract-infos/")
async def list_contracts(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("contracts")
    pg = page(request)
    expand = fields(request, EXPANDABLE)
    args: list[Any] = [who.group_id, now_ms()]
    where = [visible()]
    if name := q_str(request, "name"):
        args.append(f"%{name.lower()}%")
        where.append(f"lower(c.name) LIKE ${len(args)}")
    if group_id := q_oid(request, "groupId"):
        args.append(group_id)
        n = len(args)
        scopes = [f"c.group_id = ${n}"]
        if q_bool(request, "deep", default=False):
            scopes.append(in_subtree("c.group_id", f"${n}"))
        if q_bool(request, "up", default=False):
            scopes.append(f"c.group_id IN (SELECT unnest(path) FROM groups WHERE id = ${n})")
        where.append(f"({' OR '.join(scopes)})")
    if order_ids := q_list(request, "orderIds"):
        args.append(order_ids)
        where.append(f"c.order_id = ANY(${len(args)})")
    if contract_ids := q_list(request, "contractIds"):
        args.append(contract_ids)
        where.append(f"c.contract_id = ANY(${len(args)})")
    for param, condition in (("fromTime", "coalesce(c.communication_end_time, 9e18) >= "),
                             ("toTime", "c.start_time < "), ("tokenDuration", "c.token_duration = ")):
        value = q_int(request, param, lo=0, hi=2**53 if param != "tokenDuration" else INT32)
        if value is not None:
            args.append(value)
            where.append(f"{condition}${len(args)}")
    async with pool(request).acquire() as conn:
        rows = await conn.fetch(f"{SELECT} WHERE {' AND '.join(where)} ORDER BY c.id "
                                f"LIMIT {pg.fetch} OFFSET {pg.offset}", *args)
        return json_response(listing(request, pg, await contract_bodies(conn, rows, expand)))


@routes.get("/v2/contract-infos/{id}")
async def get_contract(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("contracts")
    expand = fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        row = await visible_contract(conn, who, oid(request))
        return json_response((await contract_bodies(conn, [row], expand))[0])


@routes.post("/v2/contract-infos/")
async def create_contract(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("contracts", write=True)
    body = validated(await json_body(request), "contractInfoCreate")
    ident = new_id()
    values = {COLUMNS[k]: v for k, v in body.items() if k in COLUMNS}
    values.setdefault("order_id", ident)
    values.setdefault("start_time", now_ms())
    values.update(id=ident, group_id=body["groupId"], created_by=who.api_user_id)
    async with pool(request).acquire() as conn:
        await group_in_scope(conn, who.group_id, body["groupId"])
        await conn.execute(f"INSERT INTO contract_infos({', '.join(values)}) "
                           f"VALUES ({', '.join(f'${i}' for i in range(1, len(values) + 1))})", *values.values())
    return json_response({"id": ident}, 201)


@routes.put("/v2/contract-infos/{id}")
async def update_contract(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("contracts", write=True)
    body = validated(await json_body(request), "contractInfoUpdate")
    changes = {COLUMNS[k]: v for k, v in body.items() if k in COLUMNS}
    async with pool(request).acquire() as conn:
        row = await own_contract(conn, who, oid(request))
        if changes:
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=2))
            await conn.execute(f"UPDATE contract_infos SET {sets}, updated_at = now() WHERE id = $1",
                               row["id"], *changes.values())
    return web.Response(status=204)


@routes.delete("/v2/contract-infos/{id}")
async def delete_contract(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("contracts", write=True)
    async with pool(request).acquire() as conn, conn.transaction():
        row = await own_contract(conn, who, oid(request))
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM device_types WHERE contract_id = $1) OR "
                               "EXISTS (SELECT 1 FROM devices WHERE contract_id = $1)", row["id"]):
            raise Conflict("The contract is used by device types or devices.")
        await conn.execute("DELETE FROM contract_infos WHERE id = $1", row["id"])
    return web.Response(status=204)


@routes.get("/v2/contract-infos/{id}/devices")
async def contract_devices(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices")
    pg = page(request)
    expand = fields(request, DEVICE_EXPANDABLE)
    now = now_ms()
    args: list[Any] = [who.group_id, now, oid(request)]
    where = [in_subtree("d.group_id", "$1"), "d.contract_id = $3", in_use(now="$2")]
    if device_type_id := q_oid(request, "deviceTypeId"):
        args.append(device_type_id)
        where.append(f"d.device_type_id = ${len(args)}")
    async with pool(request).acquire() as conn:
        await visible_contract(conn, who, oid(request))
        rows = await conn.fetch(f"{DEVICE_SELECT} WHERE {' AND '.join(where)} ORDER BY d.id "
                                f"LIMIT {pg.fetch} OFFSET {pg.offset}", *args)
        return json_response(listing(request, pg, await device_bodies(conn, rows, expand, now)))
