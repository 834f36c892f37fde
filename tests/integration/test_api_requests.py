"""Requests the reference allows are accepted, and its scope rules for contracts hold (issue 16, point 3),
through the running API on PostgreSQL; and every device has a PAC, seeded ones too (point 2)."""
from __future__ import annotations

import base64
import re

import aiohttp
import pytest

from oss.profiles import PROFILES
from program.demo.seed import seed_network
from simulator.network import Device, Network, Station
from tests.api_support import Tenant, api, check, make_device_type, make_tenant  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
PROFILE = {p.name: p.id for p in PROFILES.values()}


def basic(tenant: Tenant) -> dict[str, str]:
    token = base64.b64encode(f"{tenant.client.login}:{tenant.client.token}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_double_slashes_are_read_as_one_and_authenticated_after(api):
    t = await make_tenant(api, "Slashes")
    dt = await make_device_type(t.client, t)
    origin = api.base.removesuffix("/v2")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{origin}//v2//devices/", headers=basic(t), json={
                "id": "5A5A0001", "name": "slashed", "pac": "0" * 16, "deviceTypeId": dt}) as r:
            assert r.status == 201, await r.text()
        async with session.get(f"{origin}//v2/devices//5A5A0001", headers=basic(t),
                               params={"fields": "deviceType(name)"}) as r:
            body = await r.json()
            assert r.status == 200 and body["name"] == "slashed" and body["deviceType"]["name"] == "sensor", body
        async with session.get(f"{origin}//v2//devices/5A5A0001") as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic"), \
                "a merged path is authenticated like any other"
        async with session.get(f"{origin}//v2//nothing-here", headers=basic(t)) as r:
            assert r.status == 404 and set(await r.json()) == {"message"}


async def test_profile_ids_under_the_examples_name_and_the_schemas(api):
    t = await make_tenant(api, "Profile names")
    c = t.client
    made = check(await c.post("/api-users/", {"groupId": t.group, "name": "named",
                                              "profileIds": [PROFILE["DEVICE MANAGER [R]"]]}), 201)["id"]
    check(await c.put(f"/api-users/{made}/profiles", {"profileIds": [PROFILE["USER MANAGER [R]"]]}), 204)
    check(await c.put(f"/api-users/{made}/profiles", {"profileId": [PROFILE["CUSTOMER [R]"]]}), 204)
    shown = check(await c.get(f"/api-users/{made}"), 200)
    assert [p["id"] for p in shown["profiles"]] == [PROFILE[n] for n in (
        "DEVICE MANAGER [R]", "USER MANAGER [R]", "CUSTOMER [R]")]
    check(await c.put(f"/api-users/{made}", {"name": "renamed", "profileIds": [PROFILE["USER MANAGER [W]"]]}), 204)
    shown = check(await c.get(f"/api-users/{made}"), 200)
    assert shown["name"] == "renamed" and [p["id"] for p in shown["profiles"]] == [PROFILE["USER MANAGER [W]"]]
    r = await c.put(f"/api-users/{made}/profiles", {"name": "no profiles"})
    assert r.status == 400 and r.body["errors"][0]["field"] == "profileIds"
    r = await c.put(f"/api-users/{made}/profiles", {"profileIds": ["5138e7dfa2f1fffaf25fd409"]})
    assert r.status == 400 and r.body["errors"][0]["field"] == "profileIds[0]"


async def test_null_unsets_and_a_certificate_key_of_null_is_no_certificate(api):
    t = await make_tenant(api, "Nulls")
    c = t.client
    dt = await make_device_type(c, t, description="with a description")
    check(await c.post("/devices/", {"id": "5A5A0101", "name": "n", "pac": "0" * 16, "deviceTypeId": dt,
                                     "productCertificate": {"key": None}, "lat": None, "lng": None,
                                     "prototype": None, "activable": None, "automaticRenewal": None}), 201)
    device = check(await c.get("/devices/5A5A0101"), 200)
    assert device["productCertificate"] == {} and device["prototype"] is False and device["activable"] is True
    check(await c.put("/devices/5A5A0101", {"productCertificate": {"key": "P_0003_71CF_01"}, "lat": 43.6,
                                            "lng": 1.4}), 204)
    check(await c.put("/devices/5A5A0101", {"name": None, "productCertificate": {"key": None}, "lat": None,
                                            "lng": None, "activable": None}), 204)
    device = check(await c.get("/devices/5A5A0101"), 200)
    assert (device["name"], device["productCertificate"], device["location"], device["activable"]) == \
        ("n", {}, {"lat": 0.0, "lng": 0.0}, True), "cleared what can be; the name and activable are kept"
    check(await c.put(f"/device-types/{dt}", {"description": None, "name": None, "keepAlive": None}), 204)
    shown = check(await c.get(f"/device-types/{dt}"), 200)
    assert "description" not in shown and shown["name"] == "sensor" and shown["keepAlive"] == 0
    contract = check(await c.get(f"/contract-infos/{t.contract}"), 200)
    assert (contract["activationEndTime"], contract["communicationEndTime"]) == (0, 0), "0: no limit"


async def test_a_device_type_uses_a_contract_of_its_own_group(api):
    parent = await make_tenant(api, "Contract owner")
    child = check(await parent.client.post("/groups/", {"name": "Contract child", "parentId": parent.group}),
                  201)["id"]
    body = {"name": "sub type", "groupId": child, "contractId": parent.contract}
    r = await parent.client.post("/device-types/", body)
    assert r.status == 400 and r.body["errors"][0]["field"] == "contractId", r.body
    assert "another group" in r.body["errors"][0]["message"]
    r = await parent.client.post("/device-types/", {**body, "contractId": None, "contracts": [
        {"id": parent.contract}]})
    assert r.status == 400 and r.body["errors"][0]["field"] == "contracts[0].id", r.body
    own = check(await api.root.post("/contract-infos/", {"name": "child's own", "groupId": child}), 201)["id"]
    check(await parent.client.post("/device-types/", {**body, "contractId": own}), 201)


async def test_reading_a_contract_by_id_shows_what_the_list_shows(api):
    top = await make_tenant(api, "Scope top")
    middle = await make_tenant(api, "Scope middle", parent=top.group)
    below = await make_tenant(api, "Scope below", parent=middle.group)
    beside = await make_tenant(api, "Scope beside", parent=top.group)
    contracts = {t.contract: name for t, name in ((top, "top"), (middle, "middle"), (below, "below"),
                                                  (beside, "beside"))}
    listed = {c["id"] for c in check(await middle.client.get("/contract-infos/"), 200)["data"]} & set(contracts)
    assert {contracts[c] for c in listed} == {"top", "middle", "below"}, "its groups and the groups above"
    for contract, name in contracts.items():
        r = await middle.client.get(f"/contract-infos/{contract}")
        assert (r.status == 200) == (contract in listed), f"{name}: listed {contract in listed}, read {r.status}"


async def test_every_device_has_a_pac_the_seeded_ones_too(api):
    network = Network([Station("5EED", 43.6, 1.44)], [Device("5EED0001", 43.6, 1.44)])
    async with api.pool.acquire() as conn:
        await seed_network(conn, network, name="seeded pac", parent_group=api.root_group)
    seeded = check(await api.root.get("/devices/5EED0001"), 200)
    assert re.fullmatch(r"[0-9A-F]{16}", seeded["pac"]), seeded


async def test_unknown_properties_and_parameters_are_ignored(api):
    t = await make_tenant(api, "Unknown fields")
    c = t.client
    group = check(await c.post("/groups/", {"name": "with extras", "parentId": t.group, "type": 8,
                                            "networkOperatorId": "572f1204017975032d8ec1dd", "billable": True}),
                  201)["id"]
    dt = await make_device_type(c, t, geolocPayloadConfigId="5d8cdc8fea06bd5a4f9d0c28")
    check(await c.post("/devices/", {"id": "5A5A0201", "name": "x", "pac": "0" * 16, "deviceTypeId": dt,
                                     "payloadEncryption": True, "modemCertificate": {"key": "M_1"}}), 201)
    check(await c.put("/devices/5A5A0201", {"name": "y", "payloadEncryption": True}), 204)
    assert check(await c.get("/devices/5A5A0201", params={"authorizations": "true"}), 200)["name"] == "y"
    assert check(await c.get(f"/groups/{group}", params={"fields": "paths(name)"}), 200)["path"][0]["name"] == \
        "Unknown fields", "the reference's fields=paths(name) is path(name)"
