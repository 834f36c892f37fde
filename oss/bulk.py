"""/devices/bulk: create, edit, transfer, replace, restart, suspend, resume, unsubscribe, delete.

Each operation takes a JSON body (Sigfox shapes) or a CSV upload (formats in
`oss.bulk_rows`). `?dryRun=true` checks every row against the database and
answers the report at once, writing nothing. Otherwise the job runs in the
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
from oss.context import JOBS, pool
from oss.device_store import RowError
from oss.device_types import scoped_device_type
from oss.errors import NotFound, json_response
from oss.params import INT32, is_csv, json_body, oid, q_bool, q_oid, q_str, read_body
from oss.scope import in_subtree
from oss.shape import compact
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
        text = (await read_body(request, bulk=True)).decode("utf-8", errors="replace")
        rows, errors = csv_rows(kind, text)
        params: dict[str, Any] = {}
        if kind in ("create", "transfer"):
            params["deviceTypeId"] = q_oid(request, "deviceTypeId", required=True)
        if kind == "create":
            params["prefix"] = q_str(request, "prefix", max_length=40) or ""
            params["prototype"] = q_bool(request, "prototype", default=False)
        if kind == "transfer":
            params.update(keepHistory=q_bool(request, "keepHistory", default=False),
                          activable=q_bool(request, "activable", default=True))
    else:
        body = validated(await json_body(request, bulk=True), ENVELOPE[kind], rows="data")
        params = {k: v for k, v in body.items() if k in ("deviceTypeId", "prefix", "prototype")}
        if "productCertificate" in body and body["productCertificate"]:
            params["certificate"] = body["productCertificate"].get("key")
        rows, errors = json_rows(kind, body.get("data") or []), []
    rows, errors = checked_rows(kind, rows, errors)
    return params, rows, errors


async def _operation(request: web.Request, kind: str) -> web.Response:
    who = caller(request)
    who.require("devices", write=True)
    params, rows, errors = await _read(request, kind)
    if "deviceTypeId" in params:
        async with pool(request).acquire() as conn:
            await scoped_device_type(conn, who, params["deviceTypeId"], field="deviceTypeId")
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
        body["dryRun"] = True
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
        job = await conn.fetchrow(f"SELECT id, kind, total, success, job_done, "
                                  f"total - jsonb_array_length(rows) + processed AS processed, "
                                  f"(SELECT count(*) FROM bulk_job_errors e WHERE e.job_id = j.id) AS nb_errors "
                                  f"FROM bulk_jobs j WHERE id = $2 AND {in_subtree('group_id', '$1')}",
                                  who.group_id, oid(request, "jobId"))
        if job is None or (kinds and job["kind"] not in kinds):
            raise NotFound("The requested job was not found.")
        errors = await conn.fetch("SELECT row, entity, field, message, type FROM bulk_job_errors "
                                  "WHERE job_id = $1 ORDER BY row LIMIT $2", job["id"], INT32)
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


async def _restart_all(request: web.Request, column: str) -> web.Response:
    """Restart every device of a device type or of a contract, in the caller's groups."""
    who = caller(request)
    who.require("devices", write=True)
    async with pool(request).acquire() as conn:
        if column == "device_type_id":
            owner = (await scoped_device_type(conn, who, oid(request)))["id"]
        else:
            from oss.contracts import visible_contract
            owner = (await visible_contract(conn, who, oid(request)))["id"]
        ids = await conn.fetch(f"SELECT id FROM devices WHERE {column} = $2 AND {in_subtree('group_id', '$1')} "
                               "ORDER BY id", who.group_id, owner)
    rows = [(n, {"id": r["id"]}) for n, r in enumerate(ids, start=1)]
    job_id, total = await request.app[JOBS].submit(who, "restart", {}, rows, [])
    return json_response({"total": total, "jobId": job_id}, 201)


@routes.post("/v2/device-types/{id}/bulk/restart")
async def restart_device_type(request: web.Request) -> web.Response:
    return await _restart_all(request, "device_type_id")


@routes.post("/v2/contract-infos/{id}/bulk/restart")
async def restart_contract(request: web.Request) -> web.Response:
    return await _restart_all(request, "contract_id")


routes.get("/v2/device-types/bulk/restart/{jobId}")(_action_status("restart"))
routes.get("/v2/contract-infos/bulk/restart/{jobId}")(_action_status("restart"))
routes.post("/v2/devices/bulk")(_operation_route("create"))
routes.put("/v2/devices/bulk")(_operation_route("edit"))
for _kind in ("transfer", "replace", "restart", "suspend", "resume", "unsubscribe", "delete"):
    routes.post(f"/v2/devices/bulk/{_kind}")(_operation_route(_kind))
for _kind in ("restart", "suspend", "resume", "unsubscribe", "delete"):
    routes.get(f"/v2/devices/bulk/{_kind}/{{jobId}}")(_action_status(_kind))
