"""/coverages: predicted coverage of the network at any location (Sigfox API v2 shapes).

- `GET /coverages/global/predictions?lat&lng[&radius][&groupId]`: margins for redundancy 1, 2, 3 of
  the area of `radius` metres (default 300) around the location (oss.coverage_answers: how an area is
  averaged); `POST` the same for up to 1,000 locations; `POST .../bulk` up to 100,000 in a background
  job (`{jobId}`), its answer at `GET .../bulk/{jobId}`, for callers of the job's group (and the groups
  above it) only.
- `GET /coverages/operators/redundancy?lat&lng[&operatorId][&deviceSituation][&deviceClassId]`: how
  many stations hear a device there (0 to 3, 3 meaning 3 or more).

The global predictions are for an OUTDOOR device of class 0U unless `deviceSituation` and
`deviceClassId` (Backhaul extensions, the redundancy's parameters) say otherwise; the redundancy's
default situation is INDOOR, as the reference's. Backhaul runs one radio network: every enabled
station serves everyone, so `groupId` and `operatorId` are checked (a group of the caller's, an
operator at, below or above the caller's group: else 404) and do not change the answer. Any API user
may ask (every profile reads its groups: `groups:read`).
"""
from __future__ import annotations

import asyncio
from typing import Any, Final

import orjson
from aiohttp import web

from oss.auth import Caller, caller
from oss.clock import ms
from oss.context import COVERAGE_JOBS, COVERAGE_SITES, RADIO, pool
from oss.coverage_answers import (
    DEFAULT_RADIUS_M,
    MAX_BULK_LOCATIONS,
    MAX_LOCATIONS,
    MAX_RADIUS_M,
    LocationsQuery,
    bulk_answer,
    predict_locations,
    redundancy_answer,
)
from oss.errors import BadRequest, FieldError, json_response
from oss.params import json_body, oid, q_choice, q_float, q_int, q_oid
from oss.storage import coverage_jobs, groups, operators
from oss.storage.sql import Executor
from oss.validate import validated
from radio.link_budget import INSTALLATION_LOSS_DB, UPLINK_CLASS_STEP_DB
from radio.predict import predict

routes = web.RouteTableDef()
SITUATIONS: Final = tuple(INSTALLATION_LOSS_DB)
GLOBAL_SITUATION: Final = "OUTDOOR"
REDUNDANCY_SITUATION: Final = "INDOOR"   # the reference's default deviceSituation
MAX_CLASS: Final = len(UPLINK_CLASS_STEP_DB) - 1


async def _check_group(conn: Executor, who: Caller, group_id: str | None) -> None:
    """`groupId` must name one of the caller's groups (404 otherwise); it changes nothing else."""
    if group_id is not None:
        await groups.scoped(conn, who.group_id, group_id)


def _coordinate(request: web.Request, name: str, bound: float) -> float:
    value = q_float(request, name, lo=-bound, hi=bound)
    if value is None:
        raise BadRequest(FieldError(name, "is required", "query"))
    return value


def _point_query(request: web.Request, *, situation: str, area: bool) -> LocationsQuery:
    """The location of the query string, its `radius` (an `area`: global predictions; else the point
    alone), `deviceSituation` and `deviceClassId`."""
    lat, lng = _coordinate(request, "lat", 90), _coordinate(request, "lng", 180)
    radius = q_float(request, "radius", lo=0, hi=MAX_RADIUS_M, default=DEFAULT_RADIUS_M) if area else 0.0
    return LocationsQuery([lat], [lng], radius,
                          q_choice(request, "deviceSituation", SITUATIONS, situation),
                          q_int(request, "deviceClassId", default=0, lo=0, hi=MAX_CLASS))


async def _body_query(request: web.Request, limit: int, more: str) -> tuple[LocationsQuery, str | None]:
    """A globalCoverageRequest body of at most `limit` locations, and its groupId."""
    body: Any = await json_body(request, bulk=True)  # a list too long is refused naming `locations`, not its size
    locations = body.get("locations") if isinstance(body, dict) else None
    if isinstance(locations, list) and len(locations) > limit:  # said first: checking 10^5 items would be slow
        raise BadRequest(FieldError("locations", f"at most {limit:,} locations a request, got {len(locations):,}"
                                                 f"{more}"))
    body = validated(body, "globalCoverageRequest")
    query = LocationsQuery([p["lat"] for p in body["locations"]], [p["lng"] for p in body["locations"]],
                           body.get("radius", DEFAULT_RADIUS_M), body.get("deviceSituation", GLOBAL_SITUATION),
                           body.get("deviceClassId", 0))
    return query, body.get("groupId")


@routes.get("/v2/coverages/global/predictions")
async def predict_location(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups")
    query = _point_query(request, situation=GLOBAL_SITUATION, area=True)
    async with pool(request).acquire() as conn:
        await _check_group(conn, who, q_oid(request, "groupId"))
        sites = await request.app[COVERAGE_SITES].get(conn)
    [answer] = predict_locations(sites, query, request.app[RADIO])
    return json_response({"locationCovered": answer["locationCovered"], "margins": answer["margins"]})


@routes.post("/v2/coverages/global/predictions")
async def predict_locations_now(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups")
    query, group_id = await _body_query(request, MAX_LOCATIONS, "; POST /v2/coverages/global/predictions/bulk "
                                                                f"takes up to {MAX_BULK_LOCATIONS:,}")
    async with pool(request).acquire() as conn:
        await _check_group(conn, who, group_id)
        sites = await request.app[COVERAGE_SITES].get(conn)
    answers = await asyncio.to_thread(predict_locations, sites, query, request.app[RADIO])
    return json_response({"data": answers})


@routes.post("/v2/coverages/global/predictions/bulk")
async def start_bulk(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups")
    query, group_id = await _body_query(request, MAX_BULK_LOCATIONS, "")
    async with pool(request).acquire() as conn:
        await _check_group(conn, who, group_id)
    job_id = await request.app[COVERAGE_JOBS].submit(who.group_id, query)
    return json_response({"jobId": job_id}, 201)


@routes.get("/v2/coverages/global/predictions/bulk/{jobId}")
async def bulk_status(request: web.Request) -> web.Response:
    """The job's answer once done (`time`: when it finished), else `jobDone: false` (`time`: when it was
    created); a failed job is done with no results and says why in `message`."""
    who = caller(request)
    who.require("groups")
    async with pool(request).acquire() as conn:
        job = await coverage_jobs.scoped(conn, who.group_id, oid(request, "jobId"))
    if job["state"] == "running":
        return json_response(bulk_answer(False, ms(job["created_at"]) or 0, None))
    stored = orjson.loads(job["result"])
    if job["state"] == "failed":
        return json_response({**bulk_answer(True, ms(job["done_at"]) or 0, None), "message": stored["message"]})
    return json_response(bulk_answer(True, ms(job["done_at"]) or 0, stored))


@routes.get("/v2/coverages/operators/redundancy")
async def redundancy(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("groups")
    query = _point_query(request, situation=REDUNDANCY_SITUATION, area=False)
    operator_id = q_oid(request, "operatorId")
    async with pool(request).acquire() as conn:
        if operator_id is not None:
            await operators.serving(conn, who.group_id, operator_id)
        elif await operators.nearest_id(conn, who.group_id) is None:
            raise BadRequest(FieldError("operatorId", "is required: no operator (a group of type 0) is at or above "
                                                      "the caller's group", "query"))
        sites = await request.app[COVERAGE_SITES].get(conn)
    prediction = predict(sites, query.lat, query.lng, request.app[RADIO], installation=query.installation,
                         uplink_class=query.uplink_class)
    return json_response(redundancy_answer(prediction))
