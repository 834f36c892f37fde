"""Tenants stay apart: every route of the API, generated from the route table, against another tenant's objects.

Three callers meet the objects of tenant B (a sibling of A under the root):
A's administrator (every route with B's ids in the path, in the body and in
bulk files: refused, and B's objects unchanged), A's read-only user (every
write on A's own objects: 403) and no credentials at all (401). A third tenant
C with the same objects runs every write as their owner, which proves that
each request was valid and was refused for its scope only. A route added
later without a row here fails the test.

The delete-then-register-again and transfer cases run on the real pipeline in
`test_registrations.py`.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from oss.profiles import PROFILES
from tests.api_support import ApiEnv, Client, Tenant, api, check, make_device_type, make_tenant  # noqa: F401

pytestmark = pytest.mark.integration

CUSTOMER_R = next(p.id for p in PROFILES.values() if p.name == "CUSTOMER [R]")
DEVICE_R = next(p.id for p in PROFILES.values() if p.name == "DEVICE MANAGER [R]")
DEVICE_W = next(p.id for p in PROFILES.values() if p.name == "DEVICE MANAGER [W]")
PAC = "0" * 16
# Not tenant data: the predefined profiles and the public coverage are the same for everyone.
SHARED = {("GET", "/v2/profiles/"), ("GET", "/v2/profiles/{id}"), ("GET", "/v2/tiles/public-coverage"),
          ("GET", "/v2/tiles/public-coverage/{z}/{x}/{y}.png"), ("GET", "/v2/tiles/public-coverage/kmz/tiles.kmz")}
PUBLIC = {("GET", "/v2/openapi.json")}
# Not tenant data either: the operator's base stations. Every tenant here is a customer, refused (403) on
# them before anything is looked up; tests/security/test_permission_matrix.py runs them as the operator.
OPERATOR_ONLY = "/v2/base-stations/"
STATION = "A0F0"


@dataclass
class Objects:
    """One tenant's objects, one of each kind the API has."""

    tenant: Tenant
    sub: str = ""
    device_type: str = ""
    callback: str = ""
    device: str = ""
    spare_device: str = ""
    api_user: str = ""
    user: str = ""
    operator: str = ""  # a sub-group of type 0 (SO): an operator
    jobs: dict[str, str] = field(default_factory=dict)

    @property
    def client(self) -> Client:
        return self.tenant.client

    @property
    def group(self) -> str:
        return self.tenant.group

    @property
    def contract(self) -> str:
        return self.tenant.contract


async def _objects(env: ApiEnv, name: str) -> Objects:
    t = await make_tenant(env, name, max_tokens=0)
    device = secrets.token_hex(3).upper()  # the API database is shared by the test modules
    o = Objects(t)
    c = t.client
    o.sub = check(await c.post("/groups/", {"name": f"{name} sub", "parentId": t.group}), 201)["id"]
    # Only an operator (the root, type 0) makes operator groups.
    o.operator = check(await env.root.post("/groups/", {"name": f"{name} operator", "parentId": t.group, "type": 0}),
                       201)["id"]
    o.device_type = await make_device_type(c, t)
    o.callback = check(await c.post(f"/device-types/{o.device_type}/callbacks", {
        "channel": "URL", "callbackType": 0, "callbackSubtype": 3, "enabled": True,
        "url": "http://127.0.0.1:9/cb", "httpMethod": "POST", "contentType": "application/json",
        "bodyTemplate": "{}"}), 201)["id"]
    o.device, o.spare_device = device, f"{device}F"
    for ident in (o.device, o.spare_device):
        check(await c.post("/devices/", {"id": ident, "name": ident, "pac": PAC, "deviceTypeId": o.device_type}), 201)
    o.api_user = check(await c.post("/api-users/", {"groupId": t.group, "name": f"{name} reader",
                                                    "profileIds": [DEVICE_R]}), 201)["id"]
    o.user = check(await c.post("/users/", {
        "firstName": name, "lastName": "User", "email": f"{name.lower().replace(' ', '')}{device.lower()}@example.com",
        "userRoles": [{"groupId": t.group, "profileId": DEVICE_R}, {"groupId": o.sub, "profileId": DEVICE_W}]}),
        201)["id"]
    for kind in ("restart", "suspend", "resume", "unsubscribe", "delete"):
        o.jobs[kind] = check(await c.post(f"/devices/bulk/{kind}", {"data": ["ABCDEF"]}), 201)["jobId"]
    o.jobs["device-type-restart"] = check(await c.post(f"/device-types/{o.device_type}/bulk/restart"), 201)["jobId"]
    o.jobs["contract-restart"] = check(await c.post(f"/contract-infos/{o.contract}/bulk/restart"), 201)["jobId"]
    await env.wait_jobs()
    return o


def fill(method: str, template: str, o: Objects) -> str:
    """The route's path with the ids of `o`'s objects (the sub-group where a group is deleted)."""
    path = template.removeprefix("/v2")
    job = o.jobs["suspend"]
    if "/device-types/bulk/restart/" in path:
        job = o.jobs["device-type-restart"]
    elif "/contract-infos/bulk/restart/" in path:
        job = o.jobs["contract-restart"]
    else:
        for kind in ("restart", "suspend", "resume", "unsubscribe", "delete"):
            if f"/devices/bulk/{kind}/" in path:
                job = o.jobs[kind]
    by_collection = {"groups": o.sub if method == "DELETE" else o.group, "device-types": o.device_type,
                     "devices": o.device, "api-users": o.api_user, "users": o.user, "contract-infos": o.contract,
                     "profiles": DEVICE_R, "operators": o.operator, "base-stations": STATION}
    path = re.sub(r"/([a-z-]+)/\{id\}", lambda m: f"/{m.group(1)}/{by_collection[m.group(1)]}", path)
    path = path.replace("{year}", "2026").replace("{month}", "3")
    return path.replace("{callbackId}", o.callback).replace("{jobId}", job).replace("{profileId}", DEVICE_W)


# What each write sends: (body, query) built from the objects it targets. `t` is the target
# tenant's objects; `own` the caller's (for bodies that mix the caller's and the target's ids).
Body = Callable[[Objects, Objects], tuple[Any, dict[str, str] | None]]
WRITES: dict[tuple[str, str], Body] = {
    ("POST", "/v2/groups/"): lambda t, own: ({"name": "planted group", "parentId": t.group}, None),
    ("PUT", "/v2/groups/{id}"): lambda t, own: ({"name": "renamed group"}, None),
    ("PUT", "/v2/operators/{id}"): lambda t, own: ({"maxDb": -20, "antenna": {"model": "planted"}}, None),
    ("DELETE", "/v2/groups/{id}"): lambda t, own: (None, None),
    ("POST", "/v2/users/"): lambda t, own: ({"firstName": "Planted", "lastName": "User",
                                            "email": f"planted{own.device.lower()}{t.device.lower()}@example.com",
                                            "userRoles": [{"groupId": t.group, "profileId": DEVICE_R}]}, None),
    ("PUT", "/v2/users/{id}"): lambda t, own: ({"firstName": "Renamed"}, None),
    ("PUT", "/v2/users/{id}/profiles"): lambda t, own: (
        {"userRoles": [{"groupId": t.sub, "profileId": DEVICE_R}]}, None),
    ("DELETE", "/v2/users/{id}/profiles/{profileId}"): lambda t, own: (None, {"groupId": t.sub}),
    ("DELETE", "/v2/users/{id}"): lambda t, own: (None, None),
    ("POST", "/v2/api-users/"): lambda t, own: ({"groupId": t.group, "name": "planted",
                                                "profileIds": [DEVICE_R]}, None),
    ("PUT", "/v2/api-users/{id}"): lambda t, own: ({"name": "renamed"}, None),
    ("PUT", "/v2/api-users/{id}/profiles"): lambda t, own: ({"profileId": [DEVICE_W]}, None),
    ("DELETE", "/v2/api-users/{id}/profiles/{profileId}"): lambda t, own: (None, None),
    ("DELETE", "/v2/api-users/{id}"): lambda t, own: (None, None),
    ("PUT", "/v2/api-users/{id}/renew-credential"): lambda t, own: (None, None),
    ("POST", "/v2/contract-infos/"): lambda t, own: ({"name": "planted contract", "groupId": t.group}, None),
    ("PUT", "/v2/contract-infos/{id}"): lambda t, own: ({"name": "renamed contract"}, None),
    ("DELETE", "/v2/contract-infos/{id}"): lambda t, own: (None, None),
    ("POST", "/v2/device-types/"): lambda t, own: ({"name": "planted type", "groupId": t.group,
                                                   "contractId": t.contract}, None),
    ("PUT", "/v2/device-types/{id}"): lambda t, own: ({"name": "renamed type"}, None),
    ("DELETE", "/v2/device-types/{id}"): lambda t, own: (None, None),
    ("PUT", "/v2/device-types/{id}/disengage"): lambda t, own: (None, None),
    ("POST", "/v2/device-types/{id}/callbacks"): lambda t, own: (
        {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
         "url": "http://127.0.0.1:9/planted", "httpMethod": "GET"}, None),
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}"): lambda t, own: ({"enabled": False}, None),
    ("DELETE", "/v2/device-types/{id}/callbacks/{callbackId}"): lambda t, own: (None, None),
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}/enable"): lambda t, own: (None, {"enabled": "false"}),
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}/downlink"): lambda t, own: (None, None),
    ("POST", "/v2/device-types/{id}/callbacks/{callbackId}/test"): lambda t, own: (None, None),
    ("POST", "/v2/device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered/replay"): lambda t, own: ({}, None),
    ("POST", "/v2/devices/"): lambda t, own: ({"id": f"{own.device}E", "name": "planted", "pac": PAC,
                                              "deviceTypeId": t.device_type}, None),
    ("PUT", "/v2/devices/{id}"): lambda t, own: ({"name": "renamed"}, None),
    ("DELETE", "/v2/devices/{id}"): lambda t, own: (None, None),
    ("POST", "/v2/devices/{id}/disengage"): lambda t, own: (None, None),
    ("PUT", "/v2/devices/{id}/unsubscribe"): lambda t, own: ({}, None),
    ("POST", "/v2/devices/bulk"): lambda t, own: ({"deviceTypeId": t.device_type, "data": [
        {"id": f"{own.device}D", "pac": PAC, "name": "planted"}]}, None),
    ("PUT", "/v2/devices/bulk"): lambda t, own: ({"data": [{"id": t.device, "name": "renamed"}]}, None),
    ("POST", "/v2/devices/bulk/transfer"): lambda t, own: ({"deviceTypeId": own.device_type,
                                                           "data": [{"id": t.device}]}, None),
    ("POST", "/v2/devices/bulk/replace"): lambda t, own: ({"data": [{"deviceId": t.device,
                                                                     "targetDeviceId": t.spare_device}]}, None),
    **{("POST", f"/v2/devices/bulk/{kind}"): (lambda t, own: ({"data": [t.device]}, None))
       for kind in ("restart", "suspend", "resume")},
    ("POST", "/v2/devices/bulk/delete"): lambda t, own: ({"data": [t.spare_device]}, None),
    ("POST", "/v2/devices/bulk/unsubscribe"): lambda t, own: ({"data": [{"id": t.device}]}, None),
    ("POST", "/v2/device-types/{id}/bulk/restart"): lambda t, own: (None, None),
    ("POST", "/v2/contract-infos/{id}/bulk/restart"): lambda t, own: (None, None),
    ("POST", "/v2/base-stations/"): lambda t, own: ({"id": "A0F1", "name": "planted", "position": {
        "lat": 43.6, "lng": 1.44}}, None),
    ("PUT", "/v2/base-stations/{id}"): lambda t, own: ({"name": "renamed station"}, None),
    ("DELETE", "/v2/base-stations/{id}"): lambda t, own: (None, None),
    # Coverage predictions for the target's group (`groupId`): another tenant's is not found.
    ("POST", "/v2/coverages/global/predictions"): lambda t, own: (
        {"locations": [{"lat": 43.6, "lng": 1.44}], "groupId": t.group}, None),
    ("POST", "/v2/coverages/global/predictions/bulk"): lambda t, own: (
        {"locations": [{"lat": 43.6, "lng": 1.44}], "groupId": t.group}, None),
}
# Reads that need a query: (body, query) as for writes.
READS: dict[tuple[str, str], Body] = {
    ("GET", "/v2/devices/{id}/product-certificate"): lambda t, own: (None, {"pac": PAC}),
    ("GET", "/v2/coverages/global/predictions"): lambda t, own: (None, {"lat": "43.6", "lng": "1.44"}),
    ("GET", "/v2/coverages/operators/redundancy"): lambda t, own: (None, {"lat": "43.6", "lng": "1.44"}),
}
# POSTs that only read (coverage predictions of many locations, or a job computing them): any API user may.
READING_POSTS = {("POST", "/v2/coverages/global/predictions"), ("POST", "/v2/coverages/global/predictions/bulk")}
# Writes that start a job: the job is the caller's own; every row of it must be refused.
JOB_WRITES = {key for key in WRITES if "/bulk" in key[1] and "{id}" not in key[1]} - {
    ("POST", "/v2/devices/bulk/replace")}


def routes(env: ApiEnv) -> list[tuple[str, str]]:
    """Every (method, canonical path) the API serves, from its route table."""
    found = set()
    for route in env.app.router.routes():
        if route.method in ("HEAD", "OPTIONS") or route.resource is None:
            continue
        canonical = route.resource.canonical
        if not canonical.endswith("/") and any(r.resource and r.resource.canonical == canonical + "/"
                                               for r in env.app.router.routes()):
            continue  # the slash-less alias of a collection route
        found.add((route.method, canonical))
    return sorted(found)


async def call(client: Client, method: str, template: str, target: Objects, own: Objects,
               **kw: Any):
    request = WRITES.get((method, template)) or READS.get((method, template))
    body, query = request(target, own) if request else (None, None)
    return await client.call(method, fill(method, template, target), body, params=query, **kw)


async def snapshot(o: Objects) -> dict[str, Any]:
    """Everything the owner can read of its objects (to prove an attack changed nothing)."""
    c = o.client
    paths = [f"/groups/{o.group}", f"/groups/{o.sub}", f"/device-types/{o.device_type}",
             f"/device-types/{o.device_type}/callbacks", f"/devices/{o.device}", f"/devices/{o.spare_device}",
             f"/api-users/{o.api_user}", f"/users/{o.user}", f"/contract-infos/{o.contract}",
             f"/contract-infos/{o.contract}/devices", f"/operators/{o.operator}", "/devices/", "/groups/",
             "/users/", "/api-users/", "/operators/"]
    return {p: check(await c.get(p), 200) for p in paths}


def ids_of(o: Objects) -> set[str]:
    return {o.group, o.sub, o.device_type, o.callback, o.api_user, o.user, o.contract, o.operator,
            *o.jobs.values()}


async def test_every_route_refuses_another_tenants_objects(api):
    a = await _objects(api, "Tenant A")
    b = await _objects(api, "Tenant B")
    c = await _objects(api, "Tenant C")
    table = routes(api)
    assert len(table) >= 70
    missing = [r for r in table if r[0] != "GET" and r not in WRITES]
    assert not missing, f"routes with no row in the tenant matrix (add one to WRITES): {missing}"
    before = await snapshot(b)
    b_ids = ids_of(b)
    refused, jobs = [], []
    for method, template in table:
        if (method, template) in PUBLIC | SHARED:
            continue
        r = await call(a.client, method, template, b, a)
        where = f"{method} {fill(method, template, b)}"
        sent = where + orjson.dumps(WRITES[(method, template)](b, a) if (method, template) in WRITES else "").decode()
        text = orjson.dumps(r.body).decode() if isinstance(r.body, (dict, list)) else str(r.body)
        leaked = {i for i in b_ids if i in text and i not in sent}  # an id the caller sent may be echoed
        assert not leaked, f"{where} answered with tenant B's ids {leaked}: {text[:300]}"
        if template.startswith(OPERATOR_ONLY):
            assert r.status == 403 and set(r.body) == {"message"}, (where, r.status, r.body)
        elif "{" in template:
            assert r.status == 404 and set(r.body) == {"message"}, (where, r.status, r.body)
        elif method == "GET":
            assert r.status == 200, (where, r.status, r.body)
        elif (method, template) in JOB_WRITES and r.status in (200, 201):
            jobs.append((where, r.body["jobId"]))
        elif template == "/v2/devices/bulk/replace":
            assert r.status == 200 and r.body["status"]["success"] == 0, (where, r.body)
            assert {e["message"] for e in r.body["status"]["errors"]} == {"device not found"}, (where, r.body)
        else:
            assert r.status in (400, 404), (where, r.status, r.body)
        refused.append(where)
    await api.wait_jobs()
    for where, job in jobs:
        status = check(await a.client.get(f"/devices/bulk/{job}"), 200)
        assert status["status"]["success"] == 0, (where, status)
        assert {e["message"] for e in status["status"]["errors"]} == {"device not found"}, (where, status)
    assert await snapshot(b) == before, "tenant A changed tenant B's objects"
    for path, key in (("/devices/", {"groupIds": b.group}), ("/devices/", {"deviceTypeId": b.device_type}),
                      ("/users/", {"groupIds": b.group}), ("/groups/", {"parentIds": b.group})):
        assert check(await a.client.get(path, params=key), 200)["data"] == [] or \
            (await a.client.get(path, params=key)).status in (400, 404), (path, key)
    csv_refused = await _bulk_files_refused(api, a, b)
    assert await snapshot(b) == before, "tenant A changed tenant B's objects with a bulk file"
    print(f"tenant matrix: {len(refused)} requests of A on B's objects refused, {len(csv_refused)} bulk files, "
          f"{len(jobs) + len(csv_refused)} bulk jobs "
          f"refused row by row, B unchanged")

    # Control: the owner (C, built like B) runs the same writes on its own objects: accepted, so
    # each refusal above came from the scope, not from a bad request.
    order = sorted((r for r in table if r[0] != "GET" and r not in SHARED and not r[1].startswith(OPERATOR_ONLY)),
                   key=_owner_order)
    for method, template in order:
        r = await call(c.client, method, template, c, c)
        # 409 (a device type that still has devices, ...) also says the owner reached the object.
        assert 200 <= r.status < 300 or (method == "DELETE" and r.status == 409), \
            (f"{method} {fill(method, template, c)} as its owner", r.status, r.body)
        if "/bulk" in template:
            await api.wait_jobs()


async def _bulk_files_refused(api: ApiEnv, a: Objects, b: Objects) -> list[str]:
    """Every bulk operation that takes a CSV upload, fed a file naming B's devices: refused row by row
    (or, for a target device type of B's, refused whole)."""
    files = {
        ("POST", "/devices/bulk"): (f"id;pac\n{a.device}C;{PAC}\n", {"deviceTypeId": b.device_type}),
        ("PUT", "/devices/bulk"): (f"id;name\n{b.device};renamed\n", None),
        ("POST", "/devices/bulk/transfer"): (f"id\n{b.device}\n", {"deviceTypeId": a.device_type}),
        ("POST", "/devices/bulk/replace"): (f"oldId;newId\n{b.device};{b.spare_device}\n", None),
        ("POST", "/devices/bulk/unsubscribe"): (f"id\n{b.device}\n", None),
        **{("POST", f"/devices/bulk/{kind}"): (f"id\n{b.device}\n", None)
           for kind in ("restart", "suspend", "resume", "delete")},
    }
    refused = []
    for (method, path), (csv, params) in files.items():
        r = await a.client.call(method, path, csv=csv, params=params)
        where = f"{method} {path} (CSV)"
        if params and params.get("deviceTypeId") == b.device_type:
            assert r.status == 404, (where, r.status, r.body)
        elif path.endswith("/replace"):
            assert r.status == 200 and r.body["status"]["success"] == 0, (where, r.body)
        else:
            assert r.status in (200, 201), (where, r.status, r.body)
            await api.wait_jobs()
            status = check(await a.client.get(f"/devices/bulk/{r.body['jobId']}"), 200)
            assert status["status"]["success"] == 0, (where, status)
            assert {e["message"] for e in status["status"]["errors"]} == {"device not found"}, (where, status)
        refused.append(where)
    return refused


def _owner_order(route: tuple[str, str]) -> tuple[int, str]:
    """Deletes last, children before parents, so every owner write finds its object."""
    method, path = route
    if method != "DELETE" and not path.endswith("/bulk/delete"):
        return 0, path
    rank = ["/profiles/", "/callbacks/", "/devices/", "/users/", "/api-users/", "/device-types/", "/groups/",
            "/contract-infos/"]
    return 1 + next(i for i, part in enumerate(rank) if part in path), path


async def test_read_only_and_anonymous_callers_cannot_write(api):
    a = await _objects(api, "Tenant R")
    reader = check(await a.client.post("/api-users/", {"groupId": a.group, "name": "ro",
                                                       "profileIds": [CUSTOMER_R]}), 201)
    ro = a.client.as_user(reader["id"], reader["accessToken"])
    before = await snapshot(a)
    cells = 0
    for method, template in routes(api):
        if (method, template) in PUBLIC:
            continue
        anonymous = await call(a.client, method, template, a, a, auth=False)
        assert anonymous.status == 401 and "message" in anonymous.body, (method, template, anonymous.status)
        cells += 1
        if method == "GET":
            continue
        r = await call(ro, method, template, a, a)
        if (method, template) in READING_POSTS:
            assert 200 <= r.status < 300, (method, template, r.status, r.body)
            continue
        assert r.status == 403 and set(r.body) == {"message"}, (method, template, r.status, r.body)
        cells += 1
    assert await snapshot(a) == before
    print(f"read-only and anonymous matrix: {cells} cells")
