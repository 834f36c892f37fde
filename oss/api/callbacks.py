"""/device-types/{id}/callbacks: URL, BATCH_URL, EMAIL, MQTT, KAFKA, AZURE_EVENT_HUBS and AZURE_IOT_HUB callbacks
of a device type.

MQTT, KAFKA, AZURE_EVENT_HUBS and AZURE_IOT_HUB callbacks (issue 14) hold their settings in one object,
`channelSettings`, validated per channel (`oss.channel_settings`).

API v2 numbers (callbackType, callbackSubtype) differently from our tables:
DATA (0) UPLINK (2) / BIDIR (3); SERVICE (1) STATUS (0), ACKNOWLEDGE (4),
REPEATER (5), DATA_ADVANCED (6); ERROR (2). Backhaul adds EVENT (3) for the
device events of section 4. GEOLOC (1/1) is deprecated and refused, as Sigfox does.

Secrets (URL credentials, secret headers, the signing secret) are write-only
and sealed before they are stored: see `oss.secret_fields` for how they are
shown, kept, replaced and removed.
"""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from backhaul.destinations import DestinationPolicy
from backhaul.secretbox import keyring
from backhaul.settings import settings
from callback_language.downlink import DOWNLINK_CHANNELS
from oss import checks
from oss.auth import Caller, caller
from oss.callback_test_send import send_test
from oss.clock import new_id
from oss.context import DESTINATIONS, pool
from oss.errors import BadRequest, FieldError, json_response
from oss.params import json_body, oid, q_bool
from oss.secret_fields import SecretParts, parts_for_create, parts_for_update, shown
from oss.shape import compact
from oss.storage import callbacks, device_types
from oss.validate import validated

routes = web.RouteTableDef()
TO_DB: dict[tuple[int, int | None], int] = {(0, 2): 0, (0, 3): 1, (1, 0): 2, (1, 4): 3, (1, 5): 4, (1, 6): 5}
FROM_DB = {db: api for api, db in TO_DB.items()} | {6: (2, None), 7: (3, None)}
TYPE_ONLY = {2: 6, 3: 7}
BIDIR = 1
COLUMNS = {"channel": "channel", "enabled": "enabled", "url": "url", "httpMethod": "http_method",
           "headers": "headers", "bodyTemplate": "body_template", "contentType": "content_type",
           "linePattern": "line_pattern", "sendSni": "send_sni", "recipient": "recipient", "subject": "subject",
           "message": "message", "payloadConfig": "payload_config", "channelSettings": "channel_settings"}
SEALED_COLUMNS = ("url_credentials", "secret_headers", "signing_secret", "channel_secrets")


def db_subtype(callback_type: int, callback_subtype: int | None) -> int:
    if callback_type in TYPE_ONLY:
        return TYPE_ONLY[callback_type]
    if (callback_type, callback_subtype) == (1, 1):
        raise BadRequest(FieldError("callbackSubtype", "GEOLOC callbacks are deprecated; use DATA_ADVANCED (6)"))
    if (callback_type, callback_subtype) not in TO_DB:
        valid = ", ".join(str(s) for t, s in TO_DB if t == callback_type)
        raise BadRequest(FieldError("callbackSubtype", f"must be one of {valid} for callbackType {callback_type}"))
    return TO_DB[(callback_type, callback_subtype)]


def new_row(body: dict[str, Any]) -> dict[str, Any]:
    """The callbacks row a (validated) creation body makes, before its secrets are taken apart."""
    subtype = db_subtype(body["callbackType"], body.get("callbackSubtype"))
    row = {COLUMNS[k]: v for k, v in body.items() if k in COLUMNS}
    row.update(id=new_id(), callback_type=body["callbackType"], callback_subtype=subtype)
    row.setdefault("headers", {})
    return row


def callback_problems(body: Any, destinations: DestinationPolicy) -> list[FieldError]:
    """Every problem the API would find in `body` as a callback's content (schema, type, templates,
    grammar, destination), without saving anything: the console's live validation. Secrets are not
    taken apart (a masked secret of an edit form is a placeholder here)."""
    try:
        row = new_row(validated(body, "createCallback"))
    except BadRequest as exc:
        return exc.errors
    return checks.callback_errors(row, destinations)


def callback_body(r: asyncpg.Record | dict[str, Any], *, writer: bool) -> dict[str, Any]:
    """The v2 shape; secrets masked for `writer`s (callbacks:write), left out for the others."""
    callback_type, callback_subtype = FROM_DB.get(r["callback_subtype"], (r["callback_type"], None))
    secret = shown(r, writer=writer)
    return compact({
        "id": r["id"], "channel": r["channel"], "callbackType": callback_type, "callbackSubtype": callback_subtype,
        "payloadConfig": r["payload_config"], "enabled": r["enabled"], "dead": r["dead"], "url": secret["url"],
        "httpMethod": r["http_method"], "downlinkHook": r["downlink_hook"] if r["channel"] in DOWNLINK_CHANNELS else None,
        "headers": secret["headers"] if r["channel"] == "URL" else None, "sendSni": r["send_sni"],
        "bodyTemplate": r["body_template"], "contentType": r["content_type"], "linePattern": r["line_pattern"],
        "recipient": r["recipient"], "subject": r["subject"], "message": r["message"],
        "signingSecret": secret["signingSecret"], "channelSettings": secret["channelSettings"],
    })


def checked(request: web.Request, row: dict[str, Any], parts: SecretParts) -> dict[str, Any]:
    """`row` with its sealed secret columns, once the whole callback (secrets and destination included)
    passes the checks."""
    errors = checks.callback_errors(parts.checked_row(row), request.app[DESTINATIONS]) + \
        parts.conflicts(row.get("channel") or "URL")
    if errors:
        raise BadRequest(errors)
    return {**row, **parts.columns(keyring())}


async def scoped_callback(conn: asyncpg.Connection, who: Caller, request: web.Request) -> asyncpg.Record:
    """The callback the path names, on a device type of the caller's groups."""
    device_type = await device_types.scoped(conn, who.group_id, oid(request))
    return await callbacks.of_scoped_device_type(conn, device_type["id"], oid(request, "callbackId"))


@routes.get("/v2/device-types/{id}/callbacks")
async def list_callbacks(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("callbacks")
    async with pool(request).acquire() as conn:
        device_type = await device_types.scoped(conn, who.group_id, oid(request))
        rows = await callbacks.of_device_type(conn, device_type["id"])
    return json_response({"data": [callback_body(r, writer=who.can("callbacks", write=True)) for r in rows]})


@routes.post("/v2/device-types/{id}/callbacks")
async def create_callback(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("callbacks", write=True)
    body = validated(await json_body(request), "createCallback")
    row = new_row(body)
    parts = parts_for_create(body, row)
    row = checked(request, row, parts)
    async with pool(request).acquire() as conn:
        device_type = await device_types.scoped(conn, who.group_id, oid(request))
        row["device_type_id"] = device_type["id"]
        await callbacks.create(conn, row)
    answer = {"id": row["id"]}
    if parts.generated:
        answer["signingSecret"] = parts.generated  # shown this once
    return json_response(answer, 201)


@routes.put("/v2/device-types/{id}/callbacks/{callbackId}")
async def update_callback(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("callbacks", write=True)
    body = validated(await json_body(request), "updateCallback")
    changes = {COLUMNS[k]: v for k, v in body.items() if k in COLUMNS}
    async with pool(request).acquire() as conn, conn.transaction():
        current = await scoped_callback(conn, who, request)
        if "callbackType" in body or "callbackSubtype" in body:
            old: tuple[int, int | None] = FROM_DB.get(current["callback_subtype"], (current["callback_type"], None))
            old_type, old_subtype = old
            new_type = body.get("callbackType", old_type)
            changes["callback_type"] = new_type
            changes["callback_subtype"] = db_subtype(new_type, body.get("callbackSubtype", old_subtype))
        parts = parts_for_update(body, changes, current)
        merged = checked(request, {**dict(current), **changes}, parts)
        changes.update({column: merged[column] for column in SEALED_COLUMNS})
        await callbacks.edit(conn, current["id"], changes)
    if parts.generated:
        return json_response({"signingSecret": parts.generated})  # shown this once
    return web.Response(status=204)


@routes.delete("/v2/device-types/{id}/callbacks/{callbackId}")
async def delete_callback(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("callbacks", write=True)
    async with pool(request).acquire() as conn:
        current = await scoped_callback(conn, who, request)
        await callbacks.delete(conn, current["id"])
    return web.Response(status=204)


@routes.put("/v2/device-types/{id}/callbacks/{callbackId}/enable")
async def enable_callback(request: web.Request) -> web.Response:
    """Enable or disable; enabling also clears the `dead` flag."""
    who = caller(request)
    who.require("callbacks", write=True)
    enabled = q_bool(request, "enabled")
    if enabled is None:
        raise BadRequest(FieldError("enabled", "is required", "query"))
    async with pool(request).acquire() as conn:
        current = await scoped_callback(conn, who, request)
        await callbacks.set_enabled(conn, current["id"], enabled)
    return web.Response(status=204)


@routes.put("/v2/device-types/{id}/callbacks/{callbackId}/downlink")
async def choose_downlink_callback(request: web.Request) -> web.Response:
    """Make this BIDIR callback the device type's downlink callback (and no other)."""
    who = caller(request)
    who.require("callbacks", write=True)
    async with pool(request).acquire() as conn, conn.transaction():
        current = await scoped_callback(conn, who, request)
        if current["callback_subtype"] != BIDIR or current["channel"] not in DOWNLINK_CHANNELS:
            raise BadRequest(FieldError("callbackId", "only a DATA/BIDIR URL or BATCH_URL callback can be the "
                                                      "downlink callback", "path"))
        await callbacks.make_downlink_hook(conn, current["device_type_id"], current["id"])
    return web.Response(status=204)


@routes.post("/v2/device-types/{id}/callbacks/{callbackId}/test")
async def test_callback(request: web.Request) -> web.Response:
    """Backhaul extension: send the callback once now with sample values (`oss.callback_test_send`) and
    answer what came back: `status`, `durationMs`, the answer's first bytes, or `error`."""
    who = caller(request)
    who.require("callbacks", write=True)
    async with pool(request).acquire() as conn:
        current = await scoped_callback(conn, who, request)
    outcome = await send_test(current, request.app[DESTINATIONS], settings().callback_timeout_s)
    return json_response(outcome.body())
