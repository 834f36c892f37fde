"""/v2/coverages: predictions of one location, of many, of a bulk job, and the operators' redundancy,
on three stations stored in PostgreSQL, every answer held to the reference's schema."""
from __future__ import annotations

import time

import orjson
import pytest

from oss.context import COVERAGE_JOBS
from radio.link_budget import INSTALLATION_LOSS_DB
from tests.api_support import ApiEnv, Reply, api, check, make_tenant  # noqa: F401  (fixture)
from tests.reference_support import answer_errors

pytestmark = pytest.mark.integration

# Two stations 1 km apart and a third 8 km south of them (in a place no other test puts stations).
STATIONS = {"C0A1": (-20.0, 25.0), "C0A2": (-20.0, 25.0096), "C0A3": (-20.072, 25.0048)}
BETWEEN = (-20.0, 25.0048)    # 0.5 km from C0A1 and C0A2, 8 km from C0A3
BESIDE = (-20.0725, 25.0048)  # 55 m from C0A3, 8 km from the others
FAR = (-21.8, 25.0)           # 200 km away
PREDICTIONS = "/coverages/global/predictions"


def fits(method: str, route: str, reply: Reply) -> None:
    """The answer fits the reference's schema for the operation and status."""
    judge, misfits = answer_errors(method, f"/v2{route}", reply.status, reply.body)
    assert judge == "reference" and not misfits, misfits


@pytest.fixture
async def stations(api: ApiEnv) -> ApiEnv:
    await api.pool.executemany(
        "INSERT INTO base_stations(id, name, lat, lng) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE "
        "SET lat = EXCLUDED.lat, lng = EXCLUDED.lng, state = 'enabled', updated_at = now()",
        [(ident, f"coverage {ident}", lat, lng) for ident, (lat, lng) in STATIONS.items()])
    return api


async def one(env: ApiEnv, where: tuple[float, float], **params: str) -> dict:
    reply = await env.root.get(PREDICTIONS, params={"lat": str(where[0]), "lng": str(where[1]), **params})
    check(reply, 200)
    fits("GET", PREDICTIONS, reply)
    return reply.body


async def test_beside_a_station_is_covered_200_km_away_is_not(stations):
    beside = await one(stations, BESIDE)
    assert beside["locationCovered"] is True and beside["margins"][0] > 20, beside
    # The area is averaged: the location alone (radius 0, 55 m from the station) has more margin than its
    # 300 m area (the default), which has more than a 3 km one.
    alone, wide = await one(stations, BESIDE, radius="0"), await one(stations, BESIDE, radius="3000")
    assert alone["margins"][0] > beside["margins"][0] > wide["margins"][0], (alone, beside, wide)
    assert await one(stations, FAR) == {"locationCovered": False, "margins": [0, 0, 0]}


async def test_many_locations_answer_as_one_each_and_indoor_costs_its_loss(stations):
    locations = [{"lat": lat, "lng": lng} for lat, lng in (BETWEEN, BESIDE, FAR)]
    reply = await stations.root.post(PREDICTIONS, {"locations": locations})
    check(reply, 200)
    fits("POST", PREDICTIONS, reply)
    data = reply.body["data"]
    assert [(d["lat"], d["lng"]) for d in data] == [BETWEEN, BESIDE, FAR]
    for d, where in zip(data, (BETWEEN, BESIDE, FAR), strict=True):
        assert {k: d[k] for k in ("locationCovered", "margins")} == await one(stations, where)
    # Radius 0 (the point alone): INDOOR margins are OUTDOOR's less 20 dB, floored at 0.
    outdoor, indoor = [check(await stations.root.post(PREDICTIONS, {
        "locations": locations[:1], "radius": 0, "deviceSituation": situation}), 200)["data"][0]["margins"]
        for situation in ("OUTDOOR", "INDOOR")]
    loss = INSTALLATION_LOSS_DB["INDOOR"]
    assert outdoor[0] > loss and outdoor[2] < loss, outdoor  # one level of each kind
    assert indoor == [max(0, m - loss) for m in outdoor]
    assert (await one(stations, BETWEEN, radius="0", deviceSituation="INDOOR"))["margins"] == indoor


async def test_redundancy_counts_the_stations_that_hear(stations):
    async def redundancy(where: tuple[float, float], **params: str) -> int:
        reply = await stations.root.get("/coverages/operators/redundancy",
                                        params={"lat": str(where[0]), "lng": str(where[1]), **params})
        check(reply, 200)
        fits("GET", "/coverages/operators/redundancy", reply)
        return reply.body["redundancy"]

    assert await redundancy(BETWEEN, deviceSituation="OUTDOOR") == 3
    assert await redundancy(BETWEEN) == 2  # INDOOR by default: the station 8 km away no longer hears
    assert await redundancy(BESIDE) == 1
    assert await redundancy(BESIDE, deviceSituation="UNDERGROUND", deviceClassId="3") == 1
    assert await redundancy(FAR, deviceSituation="OUTDOOR") == 0
    operator = stations.root_group  # the root group is an operator (type 0)
    assert await redundancy(BETWEEN, operatorId=operator, deviceSituation="OUTDOOR") == 3


async def test_a_station_added_or_disabled_changes_the_answer(stations):
    assert (await one(stations, FAR))["locationCovered"] is False
    await stations.pool.execute("INSERT INTO base_stations(id, name, lat, lng) VALUES ('C0A4', 'new', $1, $2) "
                                "ON CONFLICT (id) DO UPDATE SET state = 'enabled', updated_at = now()", *FAR)
    try:
        assert (await one(stations, FAR))["locationCovered"] is True
        await stations.pool.execute("UPDATE base_stations SET state = 'disabled', updated_at = now() "
                                    "WHERE id = 'C0A4'")
        assert (await one(stations, FAR))["locationCovered"] is False
    finally:
        await stations.pool.execute("DELETE FROM base_stations WHERE id = 'C0A4'")


async def test_bad_requests_name_the_field(stations):
    def field_of(reply: Reply) -> str:
        assert reply.status == 400, reply.body
        return reply.body["errors"][0]["field"]

    root = stations.root
    assert field_of(await root.get(PREDICTIONS, params={"lat": "91", "lng": "1"})) == "lat"
    assert field_of(await root.get(PREDICTIONS, params={"lat": "1"})) == "lng"
    assert field_of(await root.get(PREDICTIONS, params={"lat": "1", "lng": "nan"})) == "lng"
    assert field_of(await root.get(PREDICTIONS, params={"lat": "1", "lng": "1", "radius": "-1"})) == "radius"
    assert field_of(await root.get("/coverages/operators/redundancy",
                                   params={"lat": "1", "lng": "1", "deviceSituation": "CAR"})) == "deviceSituation"
    assert field_of(await root.get("/coverages/operators/redundancy",
                                   params={"lat": "1", "lng": "1", "deviceClassId": "4"})) == "deviceClassId"
    assert field_of(await root.post(PREDICTIONS, {"locations": [{"lat": 1, "lng": 200}]})) == "locations[0].lng"
    assert field_of(await root.post(PREDICTIONS, {"locations": []})) == "locations"
    too_many = {"locations": [{"lat": 1.0, "lng": 2.0}] * 1001}
    reply = await root.post(PREDICTIONS, too_many)
    assert field_of(reply) == "locations" and "1,000" in reply.body["message"] and "bulk" in reply.body["message"]
    reply = await root.post(f"{PREDICTIONS}/bulk", {"locations": [{"lat": 1.0, "lng": 2.0}] * 100_001})
    assert field_of(reply) == "locations" and "100,000" in reply.body["message"]


async def test_a_bulk_job_of_5000_locations_matches_the_synchronous_answers(stations):
    tenant = await make_tenant(stations, "Coverage bulk")
    locations = [{"lat": -20.3 + 0.4 * (i // 100) / 50, "lng": 24.8 + 0.4 * (i % 100) / 100} for i in range(5000)]
    started = time.monotonic()
    reply = await tenant.client.post(f"{PREDICTIONS}/bulk", {"locations": locations, "radius": 200})
    check(reply, 201)
    fits("POST", f"{PREDICTIONS}/bulk", reply)
    job = reply.body["jobId"]
    await stations.wait_jobs()
    status = await tenant.client.get(f"{PREDICTIONS}/bulk/{job}")
    check(status, 200)
    fits("GET", f"{PREDICTIONS}/bulk/{{jobId}}", status)
    elapsed = time.monotonic() - started
    assert status.body["jobDone"] is True and len(status.body["results"]) == 5000
    synchronous = []
    for start in range(0, 5000, 1000):
        synchronous += check(await tenant.client.post(PREDICTIONS, {"locations": locations[start:start + 1000],
                                                                    "radius": 200}), 200)["data"]
    assert status.body["results"] == synchronous
    covered = sum(r["locationCovered"] for r in synchronous)
    assert 0 < covered < 5000, covered  # the grid holds both
    print(f"bulk job of 5,000 locations answered in {elapsed:.2f} s; {covered} covered")


async def test_a_job_or_group_of_another_group_is_not_found(stations):
    mine, other = await make_tenant(stations, "Coverage A"), await make_tenant(stations, "Coverage B")
    job = check(await mine.client.post(f"{PREDICTIONS}/bulk", {"locations": [{"lat": BESIDE[0], "lng": BESIDE[1]}]}),
                201)["jobId"]
    await stations.wait_jobs()
    assert check(await mine.client.get(f"{PREDICTIONS}/bulk/{job}"), 200)["jobDone"] is True
    assert check(await stations.root.get(f"{PREDICTIONS}/bulk/{job}"), 200)["jobDone"] is True  # a group above
    assert (await other.client.get(f"{PREDICTIONS}/bulk/{job}")).status == 404
    assert (await other.client.get(f"{PREDICTIONS}/bulk/{'0' * 24}")).status == 404
    assert (await other.client.get(f"{PREDICTIONS}/bulk/nothex")).status == 400
    where = {"lat": str(BESIDE[0]), "lng": str(BESIDE[1])}
    assert (await other.client.get(PREDICTIONS, params={**where, "groupId": mine.group})).status == 404
    assert (await other.client.post(PREDICTIONS, {"locations": [{"lat": 1, "lng": 1}],
                                                  "groupId": mine.group})).status == 404
    assert check(await mine.client.get(PREDICTIONS, params={**where, "groupId": mine.group}), 200)["locationCovered"]
    operator = check(await stations.root.post("/groups/", {"name": "Coverage A operator", "parentId": mine.group,
                                                           "type": 0}), 201)["id"]
    redundancy = "/coverages/operators/redundancy"
    assert check(await mine.client.get(redundancy, params={**where, "operatorId": operator}), 200)["redundancy"] == 1
    assert (await other.client.get(redundancy, params={**where, "operatorId": operator})).status == 404
    assert (await other.client.get(redundancy, params={**where, "operatorId": mine.group})).status == 404  # type 2


async def test_a_job_left_running_is_computed_at_start_and_a_failing_one_says_so(stations):
    """What a stopped API process left running is computed by the next one (`resume`, run at start);
    a job that cannot be computed is done without results and says why."""
    tenant = await make_tenant(stations, "Coverage resume")
    left = {"lat": [BESIDE[0]], "lng": [BESIDE[1]], "radius": 300.0, "deviceSituation": "OUTDOOR",
            "deviceClassId": 0}
    broken = {**left, "lng": []}  # one latitude, no longitude: cannot be answered
    await stations.pool.executemany(
        "INSERT INTO coverage_jobs(id, group_id, request) VALUES ($1, $2, $3::text::jsonb)",
        [("c0" * 12, tenant.group, orjson.dumps(left).decode()), ("c1" * 12, tenant.group,
                                                                  orjson.dumps(broken).decode())])
    assert check(await tenant.client.get(f"{PREDICTIONS}/bulk/{'c0' * 12}"), 200)["jobDone"] is False
    await stations.app[COVERAGE_JOBS].resume()
    await stations.wait_jobs()
    done = check(await tenant.client.get(f"{PREDICTIONS}/bulk/{'c0' * 12}"), 200)
    assert done["jobDone"] is True and done["results"] == [{"lat": BESIDE[0], "lng": BESIDE[1],
                                                            **await one(stations, BESIDE)}]
    failed = check(await tenant.client.get(f"{PREDICTIONS}/bulk/{'c1' * 12}"), 200)
    assert failed == {"jobDone": True, "time": failed["time"], "results": [],
                      "message": "internal error; the job stopped"}
