"""The base-station registry through the running API on PostgreSQL: operators only."""
from __future__ import annotations

import pytest

from oss.profiles import ADMIN, PROFILES
from oss.storage.base_stations import coverage_version
from tests.api_support import api, check, make_tenant  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
PROFILE = {p.name: p.id for p in PROFILES.values()}
STATION = {"id": "b1a0", "name": "Capitole roof", "position": {"lat": 43.6045, "lng": 1.4442}, "antennaHeight": 42,
           "antennaGain": 8.5, "cableLoss": 1.5, "environment": "dense-urban", "state": "planned"}


async def operator_user(api, profile: str):
    """An API user of the root group (an operator group, type 0) holding one profile."""
    made = check(await api.root.post("/api-users/", {"groupId": api.root_group, "name": f"op {profile}",
                                                     "profileIds": [PROFILE[profile]]}), 201)
    return api.root.as_user(made["id"], made["accessToken"])


async def test_operator_creates_reads_lists_updates_and_deletes_a_station(api):
    c = api.root
    before = await coverage_version(api.pool)
    assert check(await c.post("/base-stations/", STATION), 201) == {"id": "B1A0"}
    created = await coverage_version(api.pool)
    assert created != before
    got = check(await c.get("/base-stations/b1a0"), 200)
    assert {k: v for k, v in got.items() if k not in ("creationTime", "lastEditionTime")} == {
        **STATION, "id": "B1A0", "createdBy": c.login, "lastEditedBy": c.login}
    assert got["creationTime"] <= got["lastEditionTime"]
    check(await c.post("/base-stations/", {**STATION, "id": "B1A1", "name": "Blagnac mast", "state": "enabled"}), 201)
    assert (await c.post("/base-stations/", STATION)).status == 409
    planned = check(await c.get("/base-stations/", params={"state": "planned"}), 200)["data"]
    assert [s["id"] for s in planned if s["id"].startswith("B1A")] == ["B1A0"]
    named = check(await c.get("/base-stations/", params={"name": "BLAGNAC", "state": "enabled,disabled"}), 200)
    assert [s["id"] for s in named["data"]] == ["B1A1"]
    first = check(await c.get("/base-stations/", params={"limit": 1}), 200)
    assert len(first["data"]) == 1 and "offset=1" in first["paging"]["next"]

    check(await c.put("/base-stations/B1A0", {"state": "enabled", "position": {"lat": 43.61, "lng": 1.45}}), 204)
    edited = check(await c.get("/base-stations/B1A0"), 200)
    assert edited["state"] == "enabled" and edited["position"] == {"lat": 43.61, "lng": 1.45}
    assert edited["antennaHeight"] == 42 and edited["name"] == "Capitole roof"  # left out: kept
    assert edited["lastEditionTime"] >= got["lastEditionTime"]
    assert await coverage_version(api.pool) != created

    updated = await coverage_version(api.pool)
    check(await c.delete("/base-stations/B1A0"), 204)
    assert (await c.get("/base-stations/B1A0")).status == 404
    assert await coverage_version(api.pool) != updated
    assert (await c.put("/base-stations/B1A0", {"name": "gone"})).status == 404


async def test_a_new_station_gets_the_typical_radio_values(api):
    check(await api.root.post("/base-stations/", {"id": "B1B0", "name": "bare", "position": {"lat": 0, "lng": 0}}),
          201)
    got = check(await api.root.get("/base-stations/B1B0"), 200)
    assert (got["antennaHeight"], got["antennaGain"], got["cableLoss"], got["environment"], got["state"]) == (
        30, 6, 2, "urban", "enabled")


async def test_bad_bodies_and_ids_name_the_field(api):
    c = api.root
    r = await c.post("/base-stations/", {"id": "B1G", "name": "", "position": {"lat": 123, "lng": -181},
                                         "antennaHeight": 0.5, "antennaGain": 31, "cableLoss": -1,
                                         "environment": "city", "state": "on"})
    assert r.status == 400
    fields = {e["field"]: e["message"] for e in r.body["errors"]}
    assert set(fields) == {"id", "name", "position.lat", "position.lng", "antennaHeight", "antennaGain",
                           "cableLoss", "environment", "state"}
    assert "4 hexadecimal digits" in fields["id"] and "90" in fields["position.lat"]
    assert "dense-urban" in fields["environment"] and "planned" in fields["state"]
    r = await c.post("/base-stations/", {"name": "no id"})
    assert {e["field"] for e in r.body["errors"]} == {"id", "position"}
    r = await c.put("/base-stations/B1C0", {"position": {"lat": 1}})
    assert r.status == 400 and [e["field"] for e in r.body["errors"]] == ["position.lng"]
    r = await c.get("/base-stations/XYZ1")
    assert r.status == 400 and r.body["errors"][0]["field"] == "id"
    r = await c.get("/base-stations/", params={"state": "enabled,broken"})
    assert r.status == 400 and r.body["errors"][0]["field"] == "state" and "broken" in r.body["errors"][0]["message"]


async def test_customers_are_refused_whatever_their_profile(api):
    check(await api.root.post("/base-stations/", {**STATION, "id": "B1D0"}), 201)
    admin = await make_tenant(api, "Station customer")  # a customer group (type 2) with ADMIN [W]
    made = check(await api.root.post("/api-users/", {"groupId": admin.group, "name": "customer stations",
                                                     "profileIds": [PROFILE["BASE STATION MANAGER [W]"]]}), 201)
    manager = admin.client.as_user(made["id"], made["accessToken"])
    for client in (admin.client, manager):
        for method, path, body in (("GET", "/base-stations/", None), ("GET", "/base-stations/B1D0", None),
                                   ("POST", "/base-stations/", {**STATION, "id": "B1D1"}),
                                   ("PUT", "/base-stations/B1D0", {"name": "taken"}),
                                   ("DELETE", "/base-stations/B1D0", None)):
            r = await client.call(method, path, body)
            assert r.status == 403, (method, path, r.body)
            assert "operator" in r.body["message"]
    got = check(await api.root.get("/base-stations/B1D0"), 200)
    assert got["name"] == STATION["name"]
    assert (await api.root.get("/base-stations/B1D1")).status == 404


async def test_an_operator_reader_reads_but_does_not_write(api):
    check(await api.root.post("/base-stations/", {**STATION, "id": "B1E0"}), 201)
    reader = await operator_user(api, "BASE STATION MANAGER [R]")
    assert check(await reader.get("/base-stations/B1E0"), 200)["id"] == "B1E0"
    assert (await reader.put("/base-stations/B1E0", {"name": "nope"})).status == 403
    assert (await reader.delete("/base-stations/B1E0")).status == 403
    devices_only = await operator_user(api, "DEVICE MANAGER [W]")
    assert (await devices_only.get("/base-stations/B1E0")).status == 403
    writer = await operator_user(api, "BASE STATION MANAGER [W]")
    check(await writer.put("/base-stations/B1E0", {"name": "renamed"}), 204)
    assert check(await api.root.get("/base-stations/B1E0"), 200)["lastEditedBy"] == writer.login


async def test_a_heard_station_is_not_deleted(api):
    c = api.root
    for ident in ("B1F0", "B1F1"):
        check(await c.post("/base-stations/", {**STATION, "id": ident}), 201)
    await api.pool.execute(
        "INSERT INTO messages(id, device_id, time, seq_number, data, rinfos) VALUES ($1, 'B1F', 0, 1, '', $2::jsonb)",
        "b1f-heard", [{"baseStation": "A000", "rssi": -120}, {"baseStation": "B1F0", "rssi": -110}])
    r = await c.delete("/base-stations/B1F0")
    assert r.status == 409 and "disabled" in r.body["message"]
    assert check(await c.get("/base-stations/B1F0"), 200)["id"] == "B1F0"
    await api.pool.execute("INSERT INTO message_downlinks(message_id, device_id, time, station) "
                           "VALUES ('b1f-dl', 'B1F', 0, 'B1F1')")
    assert (await c.delete("/base-stations/B1F1")).status == 409
    check(await c.put("/base-stations/B1F0", {"state": "disabled"}), 204)


async def test_only_operators_make_operator_groups(api):
    customer = await make_tenant(api, "Would-be operator", profiles=(ADMIN,))
    r = await customer.client.post("/groups/", {"name": "Fake SO", "parentId": customer.group, "type": 0})
    assert r.status == 403 and "operator" in r.body["message"]
    assert (await customer.client.put(f"/groups/{customer.group}", {"type": 0})).status == 403
    assert await api.pool.fetchval("SELECT type FROM groups WHERE id = $1", customer.group) == 2
    child = check(await customer.client.post("/groups/", {"name": "Shop", "parentId": customer.group, "type": 8}),
                  201)["id"]
    assert (await customer.client.put(f"/groups/{child}", {"type": 0})).status == 403
    check(await customer.client.put(f"/groups/{child}", {"type": 9}), 204)
    so = check(await api.root.post("/groups/", {"name": "Real SO", "parentId": api.root_group, "type": 0}), 201)
    assert await api.pool.fetchval("SELECT type FROM groups WHERE id = $1", so["id"]) == 0
