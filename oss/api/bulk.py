"""/devices/bulk: create, edit, transfer, replace, restart, suspend, resume, unsubscribe, delete.

Each operation takes a JSON body (Sigfox shapes) or a CSV upload (formats in
`oss.bulk_rows`). `?dryRun=true` runs the operation in a transaction that is
rolled back and answers the report at once (the rows that would succeed in
`accepted`, the others in `status.errors`), writing nothing. Otherwise the job runs in the
background: `{total, jobId}` now, progress and per-row errors at its status
URL. Replace is synchronous, as in API v2. Delete is Backhaul's "Delete
series" (API v2 has none).
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from oss import bulk_jobs
from oss.auth import Caller, caller
from oss.bulk_rows import ACTIONS, checked_rows, csv_rows, json_rows
from oss.clock import now_ms
from oss.context import JOBS, pool
from oss.device_operations import RowError, certificate_key
from oss.errors import json_response
from oss.params import INT32, is_csv, json_body, oid, q_bool, q_oid, q_str, read_body
from oss.shape import compact
from oss.storage import contracts, device_types, devices, jobs
from oss.validate import validated

routes = web.RouteTableDef()
ENVELOPE = {"create": "asynchronousDeviceCreationJob", "edit": "asynchronousDeviceEditionJob",
            "transfer": "asynchronousDeviceTransferJob", "replace": "asynchronousDeviceReplacementJob",
            "unsubscribe": "bulkUnsubscribe", **{action: "deviceActionJob" for action in ACTIONS}}
STATUS = {"create": 200, "transfer": 200, "replace": 200}


def _error(e: RowError) -> dict[str, Any]:
    return compact({"entity": e.entity, "row": e.row, "field": e.field, "message": e.message, "type": 0})


async def _read(request: web.Request, kind: str) -> tuple[dict[str, Any], list, list[RowError]]:
    """Operation parameters, rows that passed their own checks, and the rows that did not."""
    if is_csv(request):
        rows, errors = csv_rows(kind, await read_body(request, bulk=True))
        params: dict[str, Any] = {}
        if kind in ("create", "transfer"):
            params["deviceTypeId"] = q_oid(request, "deviceTypeId", required=True)
        if kind == "create":
            params["prefix"] = q_str(request, "prefix", max_length=40) or ""
            params["prototype"] = q_bool(request, "prototype", default=False)
        if kind == "transfer":
            params.update(keepHistory=q_bool(request, "keepHistory", default=False),
                          activable=q_bool(request, "activable", default=True))
        if kind == "edit":  # Backhaul: values set on every row of a CSV edit (a row's own cells win)
            params.update({name: q_bool(request, name, default=False) for name in bulk_jobs.EDIT_FLAGS
                           if name in request.query})
    else:
        body = validated(await json_body(request, bulk=True), ENVELOPE[kind], rows="data")
        params = {k: v for k, v in body.items() if k in ("deviceTypeId", "prefix", "prototype")}
        if "productCertificate" in body and body["productCertificate"]:
            params["certificate"] = certificate_key(body["productCertificate"])
        rows, errors = json_rows(kind, body.get("data") or []), []
    rows, errors = checked_rows(kind, rows, errors)
    return params, rows, errors


async def _operation(request: web.Request, kind: str) -> web.Response:
    who = caller(request)
    who.require("devices", write=True)
    params, rows, errors = await _read(request, kind)
    if "deviceTypeId" in params:
        async with pool(request).acquire() as conn:
            await device_types.scoped(conn, who.group_id, params["deviceTypeId"], field="deviceTypeId")
    if kind == "replace" or q_bool(request, "dryRun", default=False):
        return await _synchronous(request, who, kind, params, rows, errors)
    job_id, total = await request.app[JOBS].submit(who, kind, params, rows, errors)
    return json_response({"total": total, "jobId": job_id}, STATUS.get(kind, 201))


async def _synchronous(request: web.Request, who: Caller, kind: str, params: dict[str, Any], rows: list,
                       errors: list[RowError]) -> web.Response:
    dry = q_bool(request, "dryRun", default=False)
    if dry:
        success, found = await bulk_jobs.dry_run(pool(request), who, kind, params, rows)
    else:
        async with pool(request).acquire() as conn, conn.transaction():
            success, found = await bulk_jobs.apply(conn, who, kind, params, rows)
    all_errors = sorted(errors + found, key=lambda e: e.row)
    body: dict[str, Any] = {"total": len(rows) + len(errors),
                            "status": {"success": success, "errors": [_error(e) for e in all_errors]}}
    if dry:
        failed = {e.row for e in found}
        body["dryRun"] = True
        body["accepted"] = [{"row": n, "entity": r.get("id") or r.get("deviceId")} for n, r in rows if n not in failed]
    return json_response(body)


def _operation_route(kind: str):
    async def handler(request: web.Request) -> web.Response:
        return await _operation(request, kind)
    handler.__name__ = f"bulk_{kind}"
    return handler


async def _job(request: web.Request, kinds: tuple[str, ...] | None) -> tuple[dict, list[dict]]:
    who = caller(request)
    who.require("devices")
    async with pool(request).acquire() as conn:
        job = await jobs.scoped(conn, who.group_id, oid(request, "jobId"), kinds)
        errors = await jobs.errors(conn, job["id"], INT32)
    return dict(job), [compact({"entity": e["entity"], "row": e["row"] or None, "field": e["field"],
                                "message": e["message"], "type": e["type"]}) for e in errors]


@routes.get("/v2/devices/bulk/{jobId}")
async def job_status(request: web.Request) -> web.Response:
    """Any bulk job, in the registration job shape, with its progress."""
    job, errors = await _job(request, None)
    return json_response({"jobDone": job["job_done"], "total": job["total"], "kind": job["kind"],
                          "processed": job["processed"],
                          "status": {"success": job["success"], "errors": errors}})


def _action_status(kind: str):
    async def handler(request: web.Request) -> web.Response:
        job, errors = await _job(request, (kind,))
        return json_response({"jobDone": job["job_done"], "status": {
            "total": job["total"], "nbSuccess": job["success"], "nbErrors": job["nb_errors"], "errors": errors}})
    handler.__name__ = f"bulk_{kind}_status"
    return handler


async def _restart_all(request: web.Request, ids: list[str]) -> web.Response:
    """Restart these devices (all those of a device type or of a contract, in the caller's groups)."""
    rows = [(n, {"id": ident}) for n, ident in enumerate(ids, start=1)]
    job_id, total = await request.app[JOBS].submit(caller(request), "restart", {}, rows, [])
    return json_response({"total": total, "jobId": job_id}, 201)


@routes.post("/v2/device-types/{id}/bulk/restart")
async def restart_device_type(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices", write=True)
    async with pool(request).acquire() as conn:
        device_type = await device_types.scoped(conn, who.group_id, oid(request))
        ids = await devices.ids_of(conn, who.group_id, device_type_id=device_type["id"])
    return await _restart_all(request, ids)


@routes.post("/v2/contract-infos/{id}/bulk/restart")
async def restart_contract(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices", write=True)
    async with pool(request).acquire() as conn:
        contract = await contracts.visible_to(conn, who.group_id, oid(request), now_ms())
        ids = await devices.ids_of(conn, who.group_id, contract_id=contract["id"])
    return await _restart_all(request, ids)


routes.get("/v2/device-types/bulk/restart/{jobId}")(_action_status("restart"))
routes.get("/v2/contract-infos/bulk/restart/{jobId}")(_action_status("restart"))
routes.post("/v2/devices/bulk")(_operation_route("create"))
routes.put("/v2/devices/bulk")(_operation_route("edit"))
for _kind in ("transfer", "replace", "restart", "suspend", "resume", "unsubscribe", "delete"):
    routes.post(f"/v2/devices/bulk/{_kind}")(_operation_route(_kind))
for _kind in ("restart", "suspend", "resume", "unsubscribe", "delete"):
    routes.get(f"/v2/devices/bulk/{_kind}/{{jobId}}")(_action_status(_kind))
