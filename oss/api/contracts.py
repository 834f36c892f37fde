"""/contract-infos: order lines and their tokens (maxTokens, tokensInUse, tokensUsed).

A caller sees the contracts of its subtree and of its ancestors (a contract
bought higher up serves the groups below). API v2 has no contract writes;
Backhaul adds POST, PUT and DELETE for operators holding `contracts:write`,
on contracts of their own subtree. The devices of a contract are listed by
`oss.api.devices`.
"""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import caller
from oss.clock import ms, new_id, now_ms
from oss.context import pool
from oss.errors import Conflict, json_response
from oss.fields import Fields, fields
from oss.paging import listing, page
from oss.params import INT32, json_body, oid, q_bool, q_int, q_list, q_oid, q_str
from oss.shape import compact, expand_links, linked, pick
from oss.storage import contracts, groups
from oss.validate import validated

routes = web.RouteTableDef()
EXPANDABLE = ("group", "order", "blacklistedTerritories")
NO_LIMIT = 0
COLUMNS = {
    "name": "name", "activationEndTime": "activation_end_time", "communicationEndTime": "communication_end_time",
    "bidir": "bidir", "highPriorityDownlink": "high_priority_downlink", "maxUplinkFrames": "max_uplink_frames",
    "maxDownlinkFrames": "max_downlink_frames", "maxTokens": "max_tokens", "automaticRenewal": "automatic_renewal",
    "renewalDuration": "renewal_duration", "options": "options", "orderName": "order_name",
    "blacklistedTerritories": "blacklisted_territories", "contractId": "contract_id", "userId": "user_id",
    "orderId": "order_id", "pricingModel": "pricing_model", "startTime": "start_time", "timezone": "timezone",
    "subscriptionPlan": "subscription_plan", "tokenDuration": "token_duration",
}


def contract_body(r: asyncpg.Record) -> dict[str, Any]:
    """A contract with every field of the reference's model: an end time of 0 is "no limit", a contract
    without an external id or BSS user shows its own id and its creator (README "API v2 compatibility")."""
    author = r["created_by"] or ""
    return compact({
        "id": r["id"], "name": r["name"], "group": {"id": r["group_id"]},
        "order": {"id": r["order_id"], "name": r["order_name"] or r["name"]}, "contractId": r["contract_id"] or r["id"],
        "userId": r["user_id"] or author, "pricingModel": r["pricing_model"],
        "subscriptionPlan": r["subscription_plan"], "startTime": r["start_time"],
        "activationEndTime": r["activation_end_time"] or NO_LIMIT,
        "communicationEndTime": r["communication_end_time"] or NO_LIMIT, "timezone": r["timezone"],
        "tokenDuration": r["token_duration"], "maxTokens": r["max_tokens"], "tokensInUse": r["tokens_in_use"],
        "tokensUsed": r["tokens_used"], "bidir": r["bidir"], "highPriorityDownlink": r["high_priority_downlink"],
        "maxUplinkFrames": r["max_uplink_frames"], "maxDownlinkFrames": r["max_downlink_frames"],
        "automaticRenewal": r["automatic_renewal"], "renewalDuration": r["renewal_duration"],
        "options": r["options"], "blacklistedTerritories": [{"id": g} for g in r["blacklisted_territories"]],
        "createdBy": author, "creationTime": ms(r["created_at"]), "lastEditionTime": ms(r["updated_at"]),
        "lastEditedBy": r["last_edited_by"] or author,
    })


def end_times(values: dict[str, Any]) -> dict[str, Any]:
    """An end time of 0 (or null) is "no limit" (the reference's rule), stored as NULL."""
    for column in ("activation_end_time", "communication_end_time"):
        if column in values and not values[column]:
            values[column] = None
    return values


async def contract_bodies(conn: asyncpg.Connection, rows: list[asyncpg.Record], expand: Fields) -> list[dict]:
    items = [contract_body(r) for r in rows]
    await expand_links(conn, items, expand, {"group": "group"})
    if "blacklistedTerritories" in expand:
        wanted = expand["blacklistedTerritories"].get("group", {})
        found = await linked(conn, "group", (g["id"] for i in items for g in i["blacklistedTerritories"]))
        for item in items:
            item["blacklistedTerritories"] = [pick(found.get(g["id"], g), wanted) for g in item["blacklistedTerritories"]]
    return items


def contract_filter(request: web.Request) -> contracts.Filter:
    """The list's query parameters."""
    name, group_id = q_str(request, "name"), q_oid(request, "groupId")
    deep = bool(group_id) and q_bool(request, "deep", default=False)
    up = bool(group_id) and q_bool(request, "up", default=False)
    order_ids, contract_ids = q_list(request, "orderIds"), q_list(request, "contractIds")
    from_time, to_time = q_int(request, "fromTime", lo=0, hi=2**53), q_int(request, "toTime", lo=0, hi=2**53)
    return contracts.Filter(name=name, group_id=group_id, deep=deep, up=up, order_ids=order_ids,
                            contract_ids=contract_ids, from_time=from_time, to_time=to_time,
                            token_duration=q_int(request, "tokenDuration", lo=0, hi=INT32))


@routes.get("/v2/contract-infos/")
async def list_contracts(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("contracts")
    pg = page(request)
    expand = fields(request, EXPANDABLE)
    wanted = contract_filter(request)
    async with pool(request).acquire() as conn:
        rows = await contracts.page(conn, who.group_id, now_ms(), pg, wanted)
        return json_response(listing(request, pg, await contract_bodies(conn, rows, expand)))


@routes.get("/v2/contract-infos/{id}")
async def get_contract(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("contracts")
    expand = fields(request, EXPANDABLE)
    async with pool(request).acquire() as conn:
        row = await contracts.visible_to(conn, who.group_id, oid(request), now_ms())
        return json_response((await contract_bodies(conn, [row], expand))[0])


@routes.post("/v2/contract-infos/")
async def create_contract(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("contracts", write=True)
    body = validated(await json_body(request), "contractInfoCreate")
    ident = new_id()
    values = end_times({COLUMNS[k]: v for k, v in body.items() if k in COLUMNS})
    values.setdefault("order_id", ident)
    values.setdefault("start_time", now_ms())
    values.update(id=ident, group_id=body["groupId"], created_by=who.api_user_id, last_edited_by=who.api_user_id)
    async with pool(request).acquire() as conn:
        await groups.scoped(conn, who.group_id, body["groupId"])
        await contracts.create(conn, values)
    return json_response({"id": ident}, 201)


@routes.put("/v2/contract-infos/{id}")
async def update_contract(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("contracts", write=True)
    body = validated(await json_body(request), "contractInfoUpdate")
    async with pool(request).acquire() as conn:
        row = await contracts.scoped(conn, who.group_id, oid(request), now_ms())
        changes = end_times({COLUMNS[k]: v for k, v in body.items() if k in COLUMNS})
        await contracts.edit(conn, row["id"], changes, edited_by=who.api_user_id)
    return web.Response(status=204)


@routes.delete("/v2/contract-infos/{id}")
async def delete_contract(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("contracts", write=True)
    async with pool(request).acquire() as conn, conn.transaction():
        row = await contracts.scoped(conn, who.group_id, oid(request), now_ms())
        if await contracts.in_use(conn, row["id"]):
            raise Conflict("The contract is used by device types or devices.")
        await contracts.delete(conn, row["id"])
    return web.Response(status=204)
