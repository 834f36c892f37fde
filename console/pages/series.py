"""New device, the device list's series toolbar (create, edit, transfer, replace, delete) and bulk job pages.

A series is always sent to the API's bulk endpoint as a CSV upload: the user's file as it is, or the ids of
the device list's current filter, one per line. The first submit is the endpoint's dry run (`?dryRun=true`:
the same operation in a transaction that is rolled back), shown per row; "Run" sends the very same bytes
and options again without `dryRun`, so the run does what the dry run showed. Asynchronous operations then
go to the job page, which polls the job's status every second (htmx) until it is done.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from console.api_calls import ApiFailed
from console.context import api
from console.render import render
from console.series_plan import (
    CHOICES,
    SERIES,
    Report,
    Series,
    filter_text,
    id_lines,
    options_of,
    parse_filter,
    report_of,
)

routes = web.RouteTableDef()
# The forms here post multipart/form-data: aiohttp cannot clone a request whose body was read whole (an
# url-encoded form is), and console/api_calls.py clones the request to call the API in-process.
FORM_FIELDS = ("id", "name", "pac", "deviceTypeId", "lat", "lng", "productCertificate")


async def _device_types(request: web.Request) -> list[dict[str, Any]]:
    """The device types the user may pick (none when they may not read device types)."""
    try:
        types = await api(request).pages("/v2/device-types/")
    except ApiFailed:
        return []
    return sorted(types, key=lambda t: str(t.get("name", "")).lower())


# New device


def _new_device_page(request: web.Request, types: list[dict[str, Any]], values: dict[str, Any],
                     errors: dict[str, str], message: str = "", status: int = 200) -> web.Response:
    return render(request, "device_new.html", {"types": types, "values": values, "errors": errors,
                                               "message": message}, status=status)


@routes.get("/devices/new")
async def new_device_form(request: web.Request) -> web.Response:
    values = {"activable": True, "automaticRenewal": True, "prototype": False,
              **{name: "" for name in FORM_FIELDS}, "deviceTypeId": request.query.get("deviceTypeId", "")}
    return _new_device_page(request, await _device_types(request), values, {})


def _number_or_text(value: str) -> Any:
    """A coordinate as a number, or as typed when it is not one (the API then names the field and why)."""
    try:
        return float(value)
    except ValueError:
        return value


def device_body(form: MultiDictProxy) -> dict[str, Any]:
    """POST /v2/devices/'s body from the New device form (empty optional fields left out)."""
    text = {name: str(form.get(name, "")).strip() for name in FORM_FIELDS}
    body: dict[str, Any] = {k: text[k] for k in ("id", "name", "pac", "deviceTypeId")}
    body.update({flag: form.get(flag) == "on" for flag in ("activable", "automaticRenewal", "prototype")})
    for axis in ("lat", "lng"):
        if text[axis]:
            body[axis] = _number_or_text(text[axis])
    if text["productCertificate"]:
        body["productCertificate"] = {"key": text["productCertificate"]}
    return body


@routes.post("/devices/new")
async def create_device(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body = device_body(form)
    answer = await api(request).call("POST", "/v2/devices/", json=body)
    if answer.ok:
        raise web.HTTPSeeOther(f"/console/devices/{answer.body['id']}")
    errors = answer.field_errors()
    if answer.status == 409:
        errors = {"id": "already exists"}
    errors = {("productCertificate" if k.startswith("productCertificate") else k): v for k, v in errors.items()}
    shown = errors.keys() & set(FORM_FIELDS)
    values = {**{name: str(form.get(name, "")).strip() for name in FORM_FIELDS},
              **{flag: body[flag] for flag in ("activable", "automaticRenewal", "prototype")}}
    message = "" if shown else answer.message or "The device could not be created."
    return _new_device_page(request, await _device_types(request), values, errors, message, status=answer.status)


# Series: the form, the dry run, the run


def _series(request: web.Request) -> Series:
    series = SERIES.get(request.match_info["kind"])
    if series is None:
        raise web.HTTPNotFound()
    return series


async def _series_form(request: web.Request, series: Series, *, filter_query: str, options: dict[str, str],
                       source: str, error: str = "", errors: dict[str, str] | None = None,
                       status: int = 200) -> web.Response:
    types = await _device_types(request) if "deviceTypeId" in series.options else []
    return render(request, "series_form.html", {
        "series": series, "filter": filter_query, "filter_items": sorted(parse_filter(filter_query).items()),
        "options": options, "source": source, "types": types, "choices": CHOICES, "error": error,
        "errors": errors or {}}, status=status)


@routes.get("/devices/series/{kind}")
async def series_form(request: web.Request) -> web.Response:
    series = _series(request)
    query = filter_text(request.query)
    defaults = {"activable": "true"} if series.kind == "transfer" else {}
    source = "filter" if series.from_filter and query else "file"
    return await _series_form(request, series, filter_query=query, options=defaults, source=source)


async def _upload(request: web.Request, series: Series, form: MultiDictProxy) -> tuple[bytes | None, str]:
    """The CSV of the series (None and why when there is none): the run's carried bytes, the uploaded
    file, or the current filter's device ids."""
    carried = form.get("upload")
    if isinstance(carried, str) and form.get("action") == "run":
        try:
            return base64.b64decode(carried.encode(), validate=True), ""
        except (binascii.Error, ValueError):
            return None, "The series to run was damaged: start again from the dry run."
    if form.get("source") == "filter" and series.from_filter:
        wanted: dict[str, Any] = parse_filter(str(form.get("filter", "")))  # never "limit": display only
        devices = await api(request).pages("/v2/devices/", **wanted)
        if not devices:
            return None, "The current filter holds no device."
        return id_lines([str(d["id"]) for d in devices]), ""
    upload = form.get("file")
    data = upload.file.read() if isinstance(upload, web.FileField) else b""
    if not data.strip():
        return None, "Choose a CSV file (one device per line) to upload."
    return data, ""


@routes.post("/devices/series/{kind}")
async def series_submit(request: web.Request) -> web.StreamResponse:
    """Dry run (the first submit) or run (the dry run page's Run button) of a series."""
    series = _series(request)
    form = await request.post()
    filter_query = filter_text(parse_filter(str(form.get("filter", ""))))
    options = options_of(series, form)
    source = "filter" if form.get("source") == "filter" and series.from_filter else "file"
    data, problem = await _upload(request, series, form)
    if data is None:
        return await _series_form(request, series, filter_query=filter_query, options=options, source=source,
                                  error=problem, status=400)
    run = form.get("action") == "run"
    query = {**options, **({} if run else {"dryRun": "true"})}
    answer = await api(request).call(series.method, series.path, query=query, text=data)
    if not answer.ok:
        return await _series_form(request, series, filter_query=filter_query, options=options, source=source,
                                  error=answer.message or "The series was refused.",
                                  errors=answer.field_errors(), status=answer.status)
    if run and series.asynchronous:
        raise web.HTTPSeeOther(f"/console/devices/jobs/{answer.body['jobId']}")
    return _report_page(request, series, report_of(answer.body), dry=not run, filter_query=filter_query,
                        options=options, data=data)


def _report_page(request: web.Request, series: Series, report: Report, *, dry: bool, filter_query: str,
                 options: dict[str, str], data: bytes) -> web.Response:
    return render(request, "series_report.html", {
        "series": series, "report": report, "dry": dry, "filter": filter_query, "options": options,
        "upload": base64.b64encode(data).decode() if dry else ""})


# Bulk jobs


async def _job(request: web.Request) -> dict[str, Any]:
    job: dict[str, Any] = await api(request).get(f"/v2/devices/bulk/{request.match_info['jobId']}")
    return job


def _job_values(request: web.Request, job: dict[str, Any]) -> dict[str, Any]:
    series = SERIES.get(str(job.get("kind")))
    total = int(job.get("total") or 0)
    # `processed` counts the rows the job ran; lines refused before it started count in `total` only.
    processed = total if job.get("jobDone") else min(total, int(job.get("processed") or 0))
    return {"job": job, "job_id": request.match_info["jobId"], "total": total, "processed": processed, "title": series.title if series else str(job.get("kind")),
            "outcome": series.outcome if series else "done", "report": report_of(job)}


@routes.get("/devices/jobs/{jobId}")
async def job_page(request: web.Request) -> web.Response:
    return render(request, "job.html", _job_values(request, await _job(request)))


@routes.get("/devices/jobs/{jobId}/progress")
async def job_progress(request: web.Request) -> web.Response:
    """The job's progress (htmx polls it every second while the job runs)."""
    return render(request, "fragments/job_progress.html", _job_values(request, await _job(request)))
