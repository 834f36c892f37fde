"""Isolation: an API user of group A can neither see nor change anything of group B (404, as if absent)."""
from __future__ import annotations

import pytest

from oss.profiles import PROFILES
from tests.api_support import api, check, make_device_type, make_tenant  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
DEVICE_R = next(p.id for p in PROFILES.values() if p.name == "DEVICE MANAGER [R]")


async def test_group_a_cannot_see_or_touch_group_b(api):
    a = await make_tenant(api, "Tenant A")
    b = await make_tenant(api, "Tenant B")
    bc = b.client
    b_sub = check(await bc.post("/groups/", {"name": "B sub", "parentId": b.group}), 201)["id"]
    b_type = await make_device_type(bc, b)
    b_cb = check(await bc.post(f"/device-types/{b_type}/callbacks", {
        "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True, "url": "http://127.0.0.1:9/",
        "httpMethod": "GET"}), 201)["id"]
    check(await bc.post("/devices/", {"id": "B0B", "name": "b", "pac": "0" * 16, "deviceTypeId": b_type}), 201)
    b_api = check(await bc.post("/api-users/", {"groupId": b.group, "name": "b2", "profileIds": [DEVICE_R]}), 201)
    b_user = check(await bc.post("/users/", {"firstName": "B", "lastName": "B", "email": "b@b.example",
                                             "userRoles": [{"groupId": b.group, "profileId": DEVICE_R}]}), 201)["id"]
    ac = a.client
    reads = [f"/groups/{b.group}", f"/groups/{b_sub}", f"/groups/{b.group}/callbacks-not-delivered",
             f"/device-types/{b_type}", f"/device-types/{b_type}/callbacks", f"/device-types/{b_type}/messages",
             f"/device-types/{b_type}/callbacks-not-delivered",
             f"/device-types/{b_type}/callbacks/{b_cb}/callbacks-not-delivered",
             "/devices/B0B", "/devices/B0B/messages", "/devices/B0B/messages/metric", "/devices/B0B/locations",
             "/devices/B0B/callbacks-not-delivered", f"/contract-infos/{b.contract}",
             f"/contract-infos/{b.contract}/devices", f"/api-users/{b_api['id']}", f"/users/{b_user}"]
    for path in reads:
        r = await ac.get(path)
        assert r.status == 404, (path, r.status, r.body)
        assert set(r.body) == {"message"}
    writes = [("PUT", f"/groups/{b.group}", {"name": "mine"}), ("DELETE", f"/groups/{b_sub}", None),
              ("POST", "/groups/", {"name": "inside B", "parentId": b.group}),
              ("PUT", f"/device-types/{b_type}", {"name": "x"}), ("DELETE", f"/device-types/{b_type}", None),
              ("POST", f"/device-types/{b_type}/callbacks", {"channel": "URL", "callbackType": 0,
                                                             "callbackSubtype": 2, "enabled": True,
                                                             "url": "http://x/", "httpMethod": "GET"}),
              ("PUT", f"/device-types/{b_type}/callbacks/{b_cb}", {"enabled": False}),
              ("PUT", f"/device-types/{b_type}/callbacks/{b_cb}/enable?enabled=false", None),
              ("DELETE", f"/device-types/{b_type}/callbacks/{b_cb}", None),
              ("PUT", f"/device-types/{b_type}/disengage", None),
              ("PUT", "/devices/B0B", {"name": "x"}), ("DELETE", "/devices/B0B", None),
              ("POST", "/devices/B0B/disengage", None), ("PUT", "/devices/B0B/unsubscribe", {}),
              ("POST", "/devices/", {"id": "A0A", "name": "a", "pac": "0" * 16, "deviceTypeId": b_type}),
              ("POST", "/device-types/", {"name": "x", "groupId": b.group, "contractId": a.contract}),
              ("PUT", f"/api-users/{b_api['id']}/renew-credential", None),
              ("DELETE", f"/api-users/{b_api['id']}", None), ("DELETE", f"/users/{b_user}", None),
              ("PUT", f"/contract-infos/{b.contract}", {"name": "x"})]
    for method, path, body in writes:
        r = await ac.call(method, path, body)
        assert r.status == 404, (method, path, r.status, r.body)
    a_type = await make_device_type(ac, a)
    r = await ac.post("/device-types/", {"name": "x", "groupId": a.group, "contractId": b.contract})
    assert r.status == 400 and r.body["errors"][0]["field"] == "contractId"
    for path, key in (("/groups/", "id"), ("/device-types/", "id"), ("/devices/", "id"), ("/api-users/", "id"),
                      ("/users/", "id"), ("/contract-infos/", "id")):
        listed = {x[key] for x in check(await ac.get(path), 200)["data"]}
        assert not listed & {b.group, b_sub, b_type, "B0B", b_api["id"], b_user, b.contract}, path
    assert check(await ac.get("/devices/", params={"groupIds": b.group}), 200)["data"] == []
    job = check(await ac.post("/devices/bulk/delete", {"data": ["B0B"]}), 201)["jobId"]
    await api.wait_jobs()
    status = check(await ac.get(f"/devices/bulk/delete/{job}"), 200)
    assert status["status"]["nbErrors"] == 1 and status["status"]["errors"][0]["message"] == "device not found"
    check(await bc.get("/devices/B0B"), 200)
    assert (await bc.get(f"/devices/bulk/{job}")).status == 404
    assert a_type


async def test_parent_sees_children_and_read_profile_cannot_write(api):
    parent = await make_tenant(api, "Parent")
    child = await make_tenant(api, "Child", parent=parent.group)
    child_type = await make_device_type(child.client, child)
    check(await parent.client.get(f"/device-types/{child_type}"), 200)
    contracts = {c["id"] for c in check(await child.client.get("/contract-infos/"), 200)["data"]}
    assert {parent.contract, child.contract} <= contracts
    assert (await child.client.get(f"/groups/{parent.group}")).status == 404
    reader = check(await parent.client.post("/api-users/", {"groupId": parent.group, "name": "ro",
                                                            "profileIds": [DEVICE_R]}), 201)
    ro = parent.client.as_user(reader["id"], reader["accessToken"])
    check(await ro.get(f"/device-types/{child_type}"), 200)
    r = await ro.put(f"/device-types/{child_type}", {"name": "x"})
    assert r.status == 403 and "message" in r.body
    assert (await ro.get("/users/")).status == 403


async def test_unknown_routes_and_methods(api):
    r = await api.root.get("/nothing/here")
    assert r.status == 404 and "message" in r.body
    r = await api.root.call("PATCH", "/groups/")
    assert r.status == 405 and "GET" in r.body["allowedMethods"]
    check(await api.root.get("/openapi.json", auth=False), 200)
