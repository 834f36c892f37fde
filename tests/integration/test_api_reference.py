"""API v2 parity, held to the reference document itself (issue 16, "must show").

1. Every 2xx answer of every served operation fits the reference's schema for that operation and
   status, except at the documented places where Backhaul follows the live service
   (`tests.reference_support.LIVE_DIFFERENCES` and `LIVE_ANSWERS`, each a bullet of the README's "API v2
   compatibility";
   the test checks the bullets are there). Operations the reference does not have (Backhaul's
   extensions) are held to our own OpenAPI document.
2. The reference's own example requests (its `example`s of bodies and parameters, the values of
   its enumerated parameters, its defaults) get no 4xx, except the documented ones (`DOCUMENTED_4XX`,
   each with its reason).

Both iterate over the application's route table, so an operation added later is covered at once:
each route is driven with the permission matrix's valid request for it (its `WRITES` row, its
objects: `tests/security/test_permission_matrix.py`, which a new route must extend anyway) and,
when the reference has the operation, with the reference's examples. The objects an example names
cannot exist here (ids of Sigfox's database): every object reference in an example (`groupId`,
`parentId`, `deviceTypeId`, `contractId`, `profileIds`, device ids) is replaced by one of the test
world's objects of that kind; every other value is sent as the reference wrote it. Messages, their
receptions, callback attempts and an undelivered callback are written by the real store stage
(through Kafka), so the message lists are not empty when they are judged.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from backhaul.db import create_pool
from oss.app import bootstrap_root, create_app, route_of
from oss.login_throttle import LoginPolicy
from schemas import delivery_results as results
from schemas.dead_letters import DeadLetter
from schemas.deliveries import http_request, new_delivery
from schemas.delivery_results import encode_delivery_result
from schemas.topics import DEAD_LETTERS, DELIVERY_RESULTS, DEVICE_EVENTS, MESSAGES, MESSAGES_ADVANCED
from store.stage import StoreStage
from tests.api_support import TEST_LIMITS, ApiEnv, Client, Reply
from tests.conftest import LOOPBACK_RECEIVERS
from tests.reference_support import (
    allowed_differences,
    answer_errors,
    example_body,
    example_queries,
    readme_section,
    reference_operation,
    reference_path,
    takes_body,
)
from tests.security import test_permission_matrix as matrix
from tests.security.permission_table import NEEDS, OPERATOR_ONLY, resource_of
from tests.stages.stage_records import (
    T0,
    Owned,
    advanced,
    duplicate,
    keyed_advanced,
    keyed_message,
    message,
)
from tests.stages.stage_support import publish, records_of, running, wait_all_committed

pytestmark = pytest.mark.integration

ADMIN = "ADMIN [W]"
OPERATOR_WRITER = "operator BASE STATION MANAGER [W]"
STATIONS = {"5A01": (43.61, 1.44), "5A02": (43.6, 1.5), "5A03": (43.7, 1.45)}
GRANTABLE = (matrix.USER_R, matrix.USER_W)
# Reference example requests answered 4xx on purpose: (method, reference path) -> why.
DOCUMENTED_4XX: dict[tuple[str, str], str] = {}


@dataclass
class Answer:
    """A 2xx answer the API gave during the test: the route it came from and what it said."""

    method: str
    route: str
    sent: str
    status: int
    body: Any


def recording(answers: list[Answer]):
    """A middleware keeping every 2xx answer of the handlers (errors are rendered outside it)."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        response = await handler(request)
        if 200 <= response.status < 300 and isinstance(response, web.Response):
            raw = response.body if isinstance(response.body, bytes) else b""
            body = orjson.loads(raw) if raw and response.content_type == "application/json" else (raw or None)
            answers.append(Answer(request.method, route_of(request), request.path_qs, response.status, body))
        return response

    return middleware


@dataclass
class Reference:
    """The permission matrix's world (group T, one object of each kind, its callers) with a message
    history, and every 2xx answer given since the API started."""

    world: matrix.World
    answers: list[Answer]
    driven: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # route -> requests sent

    @property
    def admin(self) -> Client:
        return self.world.callers[ADMIN]

    def caller_for(self, route: tuple[str, str]) -> Client:
        """T's administrator; for an operator-only route (base stations: T is a customer), the operator's."""
        key = matrix.row_key(route)
        if key is not None and resource_of(NEEDS[key]) in OPERATOR_ONLY:
            return self.world.callers[OPERATOR_WRITER]
        return self.admin

    async def send(self, route: tuple[str, str], path: str, body: Any, query: dict[str, str] | None) -> Reply:
        reply = await self.caller_for(route).call(route[0], path, body, params=query)
        self.driven.setdefault(route, []).append(
            f"{route[0]} {path}{'?' + '&'.join(f'{k}={v}' for k, v in query.items()) if query else ''}"
            f"{' ' + orjson.dumps(body).decode() if body is not None else ''} -> {reply.status}")
        return reply


@contextlib.asynccontextmanager
async def reference_world() -> AsyncIterator[Reference]:
    """The API on the isolated database with a recorder, the matrix's world, and a message history."""
    pool = await create_pool(min_size=2, max_size=10)
    answers: list[Answer] = []
    app = create_app(pool, rate_limits=TEST_LIMITS, keepalive_min_s=60, auth_cache_s=60, bulk_chunk=1000,
                     callback_allow_networks=LOOPBACK_RECEIVERS,
                     login_policy=LoginPolicy(free_failures=0, address_free_failures=0))
    app.middlewares.append(recording(answers))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    try:
        root_group, login, token = await bootstrap_root(pool, "Reference root")
        base = f"http://127.0.0.1:{server.port}/v2"
        env = ApiEnv(pool, server, base, root_group, Client(session, base, login, token), app)
        world = await matrix._populate(env)
        await store_history(world)
        yield Reference(world, answers)
    finally:
        await session.close()
        await server.close()
        await pool.close()


async def store_history(w: matrix.World) -> None:
    """Messages of T's device (one heard by three stations and located, one heard once), their callback
    attempts and one undelivered callback, written by the store stage from the records upstream sends."""
    device, callback = w.ids["devices"], w.ids["callbackId"]
    await w.pool.executemany("INSERT INTO base_stations(id, name, lat, lng) VALUES ($1, $2, $3, $4)",
                             [(s, f"station {s}", lat, lng) for s, (lat, lng) in STATIONS.items()])
    registration = await w.pool.fetchval("SELECT registration_id FROM devices WHERE id = $1", device)
    owned = Owned(w.ids["device-types"], w.group, {device: registration})
    m1, m2 = message(owned, device, 1, time_ms=T0), message(owned, device, 2, time_ms=T0 + 60_000, ack=True)
    receptions = [m1, duplicate(owned, m1, "5A02", rssi=-110.5), duplicate(owned, m1, "5A03", rssi=-121.0), m2]
    d1, d2 = (new_delivery(m, callback_id=callback, kind="DATA_UPLINK", channel="URL", device_type_id=owned.device_type,
                           message_id=m["id"], origin_ms=m["time"], created_ms=m["time"] + 100,
                           variables={"device": device}) for m in (m1, m2))
    for d in (d1, d2):
        d["request"] = http_request("GET", "http://127.0.0.1:9/cb", {}, None, None)
    attempts = [results.done(d1, send_id="s1", attempt=1, sent_at_ms=T0 + 200, now_ms=T0 + 230, status=200,
                             error_class="ok", info=None, latency_ms=30.0, answer="", next_attempt_at_ms=None)]
    attempts += [results.done(d2, send_id=f"t{n}", attempt=n, sent_at_ms=T0 + 60_200 + n, now_ms=T0 + 60_230 + n,
                              status=503, error_class="http_5xx", info="HTTP 503", latency_ms=30.0, answer="",
                              next_attempt_at_ms=None if n == 3 else T0 + 120_000, dead_delivery=d2 if n == 3 else None)
                 for n in (1, 2, 3)]
    store_pool = await create_pool(min_size=1, max_size=4)
    try:
        async with running(StoreStage(store_pool)):
            await publish(MESSAGES, [keyed_message(m) for m in receptions])
            await publish(MESSAGES_ADVANCED, [keyed_advanced(advanced(owned, m1))])
            await publish(DELIVERY_RESULTS, [(device.encode(), encode_delivery_result(r)) for r in attempts])
            await wait_all_committed(StoreStage.group, (MESSAGES, MESSAGES_ADVANCED, DEVICE_EVENTS, DELIVERY_RESULTS))
    finally:
        await store_pool.close()
    assert await records_of(DEAD_LETTERS, DeadLetter.decode) == []


# Driving a route -----------------------------------------------------------------------------------

async def drive_valid(ref: Reference, route: tuple[str, str]) -> None:
    """The permission matrix's valid request for the route (its objects made fresh where it consumes
    them), then for a read each `fields=` value the reference offers; each must answer 2xx."""
    w, (method, template) = ref.world, route
    key = matrix.row_key(route)
    write = matrix.WRITES.get(key) if method != "GET" and key else None
    target = await write.fresh(w) if write and write.fresh else {}
    marker = w.marker()
    body = write.body(w, target, marker) if write else None
    query = (write.query(w, target, marker) if write else matrix.READ_QUERY.get(key, lambda _: None)(w)) or {}
    path = matrix.fill(w, template, target)
    reply = await ref.send(route, path, body, query)
    assert 200 <= reply.status < 300, f"{method} {template}: the valid request answered {reply.status}: {reply.body}"
    operation = reference_operation(method, template)
    if method != "GET" or operation is None:
        return
    for parameter in operation.get("parameters", ()):
        if parameter["name"] == "fields" and parameter.get("in") == "query":
            for value in parameter.get("enum", ()):
                reply = await ref.send(route, path, None, {**query, "fields": value})
                assert 200 <= reply.status < 300, f"{method} {template}?fields={value}: {reply.status} {reply.body}"


async def object_for(ref: Reference, key: str, value: Any, template: str, made: dict[Any, Any]) -> Any:
    """The world's object standing for an object reference of an example (the same example id, the
    same object); None when `key` names no object."""
    w = ref.world
    if (key, orjson.dumps(value)) in made:
        return made[(key, orjson.dumps(value))]
    if key in ("groupId", "parentId"):
        mine: Any = w.group
    elif key == "deviceTypeId":
        mine = w.ids["other-type"] if template.endswith("/transfer") else w.ids["device-types"]
    elif key == "contractId":
        mine = w.ids["contract-infos"]
    elif key in ("profileIds", "profileId") and isinstance(value, list):
        mine = [GRANTABLE[i % len(GRANTABLE)] for i in range(len(value))]
    elif key == "targetDeviceId":
        mine = (await w.new_device(activable=False))["devices"]
    elif key in ("id", "deviceId") and template.startswith("/v2/devices"):
        creating = template.rstrip("/") == "/v2/devices"  # POST /devices/: a new device, its id unused
        mine = w.device_id() if creating else (await w.new_device())["devices"]
    else:
        return None
    made[(key, orjson.dumps(value))] = mine
    return mine


async def ours(ref: Reference, example: Any, template: str, made: dict[Any, Any], key: str = "") -> Any:
    """The example with each object reference replaced by one of the world's objects (see the module)."""
    if isinstance(example, dict):
        return {k: await ours(ref, v, template, made, k) for k, v in example.items()}
    if key == "contracts" and isinstance(example, list):
        return [{"id": ref.world.ids["contract-infos"]}]
    mine = await object_for(ref, key, example, template, made)
    if mine is not None:
        return mine
    if isinstance(example, list):
        if key == "data" and all(isinstance(item, str) for item in example):  # a list of device ids
            return [await object_for(ref, "id", item, template, made) for item in example]
        return [await ours(ref, item, template, made, key) for item in example]
    return example


@dataclass
class Sent:
    request: str
    status: int
    body: Any


async def drive_examples(ref: Reference, route: tuple[str, str]) -> tuple[list[Sent], bool]:
    """The reference's example requests of the route (see `example_queries`, `example_body`); a
    required parameter the reference gives no value for takes the world's. Returns what was sent and
    whether the reference gave an example body (False: the matrix's valid body was sent instead)."""
    w, (method, template) = ref.world, route
    operation = reference_operation(method, template)
    assert operation is not None
    key = matrix.row_key(route)
    write = matrix.WRITES.get(key) if method != "GET" and key else None
    required = {p["name"] for p in operation.get("parameters", ()) if p.get("in") == "query" and p.get("required")}
    sent, has_example = [], True
    for query in example_queries(operation):
        target = await write.fresh(w) if write and write.fresh else {}
        marker = w.marker()
        world_query = (write.query(w, target, marker) if write else matrix.READ_QUERY.get(key, lambda _: None)(w)) or {}
        query = {**{k: v for k, v in world_query.items() if k in required and k not in query}, **query}
        body = None
        if takes_body(operation):
            example = example_body(operation)
            has_example = example is not None
            body = await ours(ref, example, template, {}) if has_example else write.body(w, target, marker)
        reply = await ref.send(route, matrix.fill(w, template, target), body, query)
        sent.append(Sent(ref.driven[route][-1], reply.status, reply.body))
    return sent, has_example


def served(ref: Reference) -> list[tuple[str, str]]:
    return matrix.route_table(ref.world.env.app)


# The tests ---------------------------------------------------------------------------------------

async def test_every_2xx_answer_of_every_served_operation_fits_the_reference(isolated, record_property):
    started = time.monotonic()
    async with reference_world() as ref:
        routes = served(ref)
        for route in routes:
            await drive_valid(ref, route)
            if reference_operation(*route) is not None:
                await drive_examples(ref, route)
        await ref.world.wait_jobs()
        answered = {(a.method, a.route) for a in ref.answers}
        silent = [f"{m} {p}" for m, p in routes if (m, p) not in answered]
        assert not silent, f"served operations that gave no 2xx answer to judge: {silent}"
        misfits, judged = [], {"reference": 0, "ours": 0}
        for a in ref.answers:
            judge, found = answer_errors(a.method, a.route, a.status, a.body)
            judged[judge] += 1
            misfits += [f"{a.method} {a.route} ({a.sent}) {a.status}, {judge} document: {m}" for m in found[:5]]
        assert not misfits, f"{len(misfits)} places do not fit:\n" + "\n".join(misfits[:60])
        rssi = {r["rssi"] for a in ref.answers if a.route == "/v2/devices/{id}/messages"
                for m in a.body["data"] for r in m["rinfos"]}
        assert "-100.00" in rssi, f"the messages judged carry the live form the allow-list lets through: {rssi}"
    summary = (f"{len(ref.answers)} answers of {len(routes)} routes: {judged['reference']} against the reference, "
               f"{judged['ours']} against our document, in {time.monotonic() - started:.1f} s")
    record_property("reference_conformance", summary)
    print(summary)


def test_every_allowed_difference_is_written_down_in_the_readme():
    section = readme_section()
    missing = [text for text in allowed_differences() if text not in section]
    assert not missing, f"allow-list entries without their README bullet (API v2 compatibility): {missing}"


async def test_the_reference_example_requests_get_no_4xx(isolated, record_property):
    async with reference_world() as ref:
        refused, without_example, extensions, count = [], [], [], 0
        for route in served(ref):
            if reference_operation(*route) is None:
                extensions.append(f"{route[0]} {route[1]}")
                continue
            sent, has_example = await drive_examples(ref, route)
            count += len(sent)
            if not has_example:
                without_example.append(f"{route[0]} {route[1]}")
            documented = DOCUMENTED_4XX.get((route[0], reference_path(*route) or ""))
            refused += [f"{s.request}: {orjson.dumps(s.body).decode()[:300]}" for s in sent
                        if 400 <= s.status < 500 and documented is None]
        assert not refused, f"{len(refused)} example requests of the reference refused:\n" + "\n".join(refused)
    summary = (f"{count} example requests; Backhaul's extensions (not in the reference): {extensions}; "
               f"bodies the reference gives no example for (the matrix's valid body sent): {without_example}")
    record_property("reference_examples", summary)
    print(summary)
