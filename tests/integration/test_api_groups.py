"""Groups, profiles, API users and users through the running API on PostgreSQL."""
from __future__ import annotations

import pytest

from oss.profiles import ADMIN, PROFILES
from tests.api_support import api, check, make_tenant  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
DEVICE_R = next(p.id for p in PROFILES.values() if p.name == "DEVICE MANAGER [R]")


async def test_group_tree_path_level_and_filters(api):
    t = await make_tenant(api, "Tree A")
    c = t.client
    child = check(await c.post("/groups/", {"name": "Child", "parentId": t.group}), 201)["id"]
    grandchild = check(await c.post("/groups/", {"name": "Grandchild", "parentId": child, "type": 8}), 201)["id"]
    g = check(await c.get(f"/groups/{grandchild}", params={"fields": "path(name,type,level)"}), 200)
    assert g["level"] == 3 and g["leaf"] is True and g["type"] == 8
    assert [p["id"] for p in g["path"]] == [child, t.group]
    assert g["path"][0]["name"] == "Child" and "level" in g["path"][0]
    own = check(await c.get(f"/groups/{t.group}"), 200)
    assert own["path"] == [] and own["leaf"] is False
    direct = check(await c.get("/groups/", params={"parentIds": t.group}), 200)["data"]
    assert [x["id"] for x in direct] == [child]
    deep = check(await c.get("/groups/", params={"parentIds": t.group, "deep": "true"}), 200)["data"]
    assert {x["id"] for x in deep} == {child, grandchild}
    typed = check(await c.get("/groups/", params={"types": "8"}), 200)["data"]
    assert [x["id"] for x in typed] == [grandchild]
    check(await c.put(f"/groups/{child}", {"name": "Renamed", "description": "d"}), 204)
    assert check(await c.get(f"/groups/{child}"), 200)["name"] == "Renamed"
    assert (await c.delete(f"/groups/{child}")).status == 409
    check(await c.delete(f"/groups/{grandchild}"), 204)
    check(await c.delete(f"/groups/{child}"), 204)
    assert (await c.get(f"/groups/{child}")).status == 404


async def test_bad_group_bodies_name_the_field(api):
    t = await make_tenant(api, "Bodies")
    r = await t.client.post("/groups/", {"name": "ab", "parentId": "nothex", "timezone": "Mars/Olympus", "type": 3})
    assert r.status == 400
    fields = {e["field"]: e["message"] for e in r.body["errors"]}
    assert set(fields) == {"name", "parentId", "timezone", "type"}
    assert all(e["type"] == "body" for e in r.body["errors"])
    assert "at least 3" in fields["name"]
    r = await t.client.post("/groups/", b"{not json")
    assert r.status == 400
    r = await t.client.call("POST", "/groups/", csv="x")
    assert r.status == 400


async def test_api_user_credentials_renew_and_hashing(api):
    t = await make_tenant(api, "Creds")
    created = check(await t.client.post("/api-users/", {"groupId": t.group, "name": "reader",
                                                        "profileIds": [DEVICE_R]}), 201)
    reader = t.client.as_user(created["id"], created["accessToken"])
    check(await reader.get("/devices/"), 200)
    assert (await reader.post("/groups/", {"name": "Nope", "parentId": t.group})).status == 403
    stored = await api.pool.fetchval("SELECT secret_hash FROM api_users WHERE id = $1", created["id"])
    assert created["accessToken"] not in stored and stored.startswith("scrypt$")
    shown = check(await t.client.get(f"/api-users/{created['id']}", params={"fields": "group(name)"}), 200)
    assert "accessToken" not in shown and shown["group"]["name"] == "Creds"
    assert shown["profiles"] == [{"id": DEVICE_R, "name": "DEVICE MANAGER [R]"}]
    renewed = check(await t.client.put(f"/api-users/{created['id']}/renew-credential"), 200)["accessToken"]
    assert (await reader.get("/devices/")).status == 401
    check(await reader.as_user(created["id"], renewed).get("/devices/"), 200)
    check(await t.client.put(f"/api-users/{created['id']}/profiles", {"profileId": [ADMIN]}), 204)
    check(await t.client.delete(f"/api-users/{created['id']}/profiles/{DEVICE_R}"), 204)
    assert [p["id"] for p in check(await t.client.get(f"/api-users/{created['id']}"), 200)["profiles"]] == [ADMIN]
    check(await t.client.delete(f"/api-users/{created['id']}"), 204)
    assert (await reader.as_user(created["id"], renewed).get("/devices/")).status == 401


async def test_no_escalation_and_401s(api):
    t = await make_tenant(api, "Escalate")
    reader = check(await t.client.post("/api-users/", {"groupId": t.group, "name": "r", "profileIds": [DEVICE_R]}),
                   201)
    weak = t.client.as_user(reader["id"], reader["accessToken"])
    assert (await weak.post("/api-users/", {"groupId": t.group, "name": "x", "profileIds": [ADMIN]})).status == 403
    assert (await t.client.get("/groups/", auth=False)).status == 401
    assert (await t.client.as_user(reader["id"], "wrong").get("/groups/")).status == 401
    r = await t.client.get("/groups/", headers={"Authorization": "Basic !!!"}, auth=False)
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic")


async def test_profiles_and_users(api):
    t = await make_tenant(api, "People")
    c = t.client
    profiles = check(await c.get("/profiles/", params={"groupId": t.group, "fields": "roles(name)"}), 200)["data"]
    names = {p["name"] for p in profiles}
    assert {"DEVICE MANAGER [R]", "DEVICE MANAGER [W]", "ADMIN [W]"} <= names
    assert all(p["roles"] and "name" in p["roles"][0] for p in profiles)
    uid = check(await c.post("/users/", {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
                                         "userRoles": [{"groupId": t.group, "profileId": DEVICE_R}]}), 201)["id"]
    assert (await c.post("/users/", {"firstName": "A", "lastName": "B", "email": "ADA@example.com",
                                     "userRoles": [{"groupId": t.group, "profileId": DEVICE_R}]})).status == 409
    user = check(await c.get(f"/users/{uid}", params={"fields": "userRoles(group(name))"}), 200)
    assert user["userRoles"][0]["group"]["name"] == "People"
    assert user["userRoles"][0]["profile"]["name"] == "DEVICE MANAGER [R]"
    check(await c.put(f"/users/{uid}", {"lastName": "King"}), 204)
    found = check(await c.get("/users/", params={"text": "king"}), 200)["data"]
    assert [u["id"] for u in found] == [uid]
    check(await c.put(f"/users/{uid}/profiles", {"userRoles": [{"groupId": t.group, "profileId": ADMIN}]}), 204)
    assert len(check(await c.get(f"/users/{uid}"), 200)["userRoles"]) == 2
    check(await c.delete(f"/users/{uid}/profiles/{ADMIN}"), 204)
    assert len(check(await c.get(f"/users/{uid}"), 200)["userRoles"]) == 1
    check(await c.delete(f"/users/{uid}"), 204)
    assert (await c.get(f"/users/{uid}")).status == 404


async def test_a_user_is_locked_and_unlocked_with_put_locked(api):
    """Backhaul's extension of userUpdate: `locked` (the console's Lock button); a boolean, else 400 naming it."""
    t = await make_tenant(api, "Locks")
    c = t.client
    uid = check(await c.post("/users/", {"firstName": "Lin", "lastName": "Lock", "email": "lin@example.com",
                                         "userRoles": [{"groupId": t.group, "profileId": DEVICE_R}]}), 201)["id"]
    assert check(await c.get(f"/users/{uid}"), 200)["locked"] is False
    check(await c.put(f"/users/{uid}", {"locked": True}), 204)
    body = check(await c.get(f"/users/{uid}"), 200)
    assert body["locked"] is True and body["lastName"] == "Lock"
    check(await c.put(f"/users/{uid}", {"firstName": "Linda"}), 204)  # other edits leave it locked
    assert check(await c.get(f"/users/{uid}"), 200)["locked"] is True
    check(await c.put(f"/users/{uid}", {"locked": False}), 204)
    assert check(await c.get(f"/users/{uid}"), 200)["locked"] is False
    refused = check(await c.put(f"/users/{uid}", {"locked": "yes"}), 400)
    assert [e["field"] for e in refused["errors"]] == ["locked"]
    reader = await make_tenant(api, "Locks reader", parent=t.group, profiles=(DEVICE_R,))
    assert (await reader.client.put(f"/users/{uid}", {"locked": True}), 403)[0].status == 403


async def test_a_group_moves_under_another_with_its_sub_groups(api):
    """Backhaul's extension of groupUpdate: `parentId` moves the group and rewrites the paths below it."""
    from tests.api_support import make_device_type
    t = await make_tenant(api, "Movers")
    c = t.client

    async def group(name: str, parent: str) -> str:
        return check(await c.post("/groups/", {"name": name, "parentId": parent}), 201)["id"]

    west, east = await group("West", t.group), await group("East", t.group)
    branch = await group("Branch", west)
    leaf = await group("Leaf", branch)
    check(await c.put(f"/groups/{branch}", {"parentId": east}), 204)
    moved = check(await c.get(f"/groups/{branch}"), 200)
    assert moved["parentId"] == east and [g["id"] for g in moved["path"]] == [east, t.group]
    assert [g["id"] for g in check(await c.get(f"/groups/{leaf}"), 200)["path"]] == [branch, east, t.group]
    assert [g["id"] for g in check(await c.get("/groups/", params={"parentIds": west}), 200)["data"]] == []
    deep = check(await c.get("/groups/", params={"parentIds": east, "deep": "true"}), 200)["data"]
    assert {g["id"] for g in deep} == {branch, leaf}
    # Never under itself or below itself, never the caller's own group, never outside the caller's subtree.
    for target in (branch, leaf):
        refused = check(await c.put(f"/groups/{branch}", {"parentId": target}), 400)
        assert [e["field"] for e in refused["errors"]] == ["parentId"]
    assert (await c.put(f"/groups/{t.group}", {"parentId": east})).status == 403
    other = await make_tenant(api, "Movers other")
    assert (await c.put(f"/groups/{branch}", {"parentId": other.group})).status == 404
    # A device on a device type of a group that would no longer be above it stops the move.
    contract = check(await api.root.post("/contract-infos/", {"name": "east c", "groupId": east}), 201)["id"]
    type_id = await make_device_type(c, type("T", (), {"group": east, "contract": contract})())
    check(await c.post("/devices/", {"id": "CAFE01", "name": "cafe", "pac": "0" * 16, "deviceTypeId": type_id}), 201)
    await api.pool.execute("UPDATE devices SET group_id = $1 WHERE id = 'CAFE01'", leaf)  # as a transfer leaves it
    blocked = check(await c.put(f"/groups/{branch}", {"parentId": west}), 409)
    assert "CAFE01" in blocked["message"]
    assert check(await c.get(f"/groups/{branch}"), 200)["parentId"] == east
