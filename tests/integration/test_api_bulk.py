"""Bulk jobs: CSV and JSON, per-row errors, dry runs, progress, token transfer rules."""
from __future__ import annotations

import time

import pytest

from tests.api_support import api, check, make_device_type, make_tenant  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
BAD_KINDS = ("id", "pac", "cells", "lat", "duplicate")


def ten_thousand_with_fifty_bad() -> tuple[str, dict[int, str]]:
    """A CSV of 10,000 lines (after a header); 50 are bad, one way or another. Returns line -> field."""
    lines, bad = ["id;pac;name;lat;lng"], {}
    for i in range(10_000):
        line_no = i + 2
        ident, pac, tail = f"{0x100000 + i:X}", f"{i:016X}", f";dev {i};43.5;1.25"
        if i % 200 == 7:
            kind = BAD_KINDS[(i // 200) % len(BAD_KINDS)]
            bad[line_no] = kind
            if kind == "id":
                ident = f"Z{i}"
            elif kind == "pac":
                pac = "123"
            elif kind == "cells":
                tail += ";extra"
            elif kind == "lat":
                tail = f";dev {i};95;1.25"
            else:
                ident = f"{0x100000:X}"
        lines.append(f"{ident};{pac}{tail}")
    return "\n".join(lines) + "\n", bad


async def test_csv_of_10000_with_50_bad_rows(api):
    t = await make_tenant(api, "Bulk 10k")
    c = t.client
    dt = await make_device_type(c, t)
    csv, bad = ten_thousand_with_fifty_bad()
    assert len(bad) == 50
    params = {"deviceTypeId": dt}

    started = time.monotonic()
    dry = check(await c.post("/devices/bulk", csv=csv, params={**params, "dryRun": "true"}), 200)
    dry_s = time.monotonic() - started
    assert dry["dryRun"] is True and dry["total"] == 10_000 and dry["status"]["success"] == 9_950
    assert sorted(e["row"] for e in dry["status"]["errors"]) == sorted(bad)
    assert await api.pool.fetchval("SELECT count(*) FROM devices WHERE device_type_id = $1", dt) == 0
    assert await api.pool.fetchval("SELECT tokens_used FROM contract_infos WHERE id = $1", t.contract) == 0
    assert await api.pool.fetchval("SELECT count(*) FROM bulk_jobs WHERE group_id = $1", t.group) == 0

    started = time.monotonic()
    job = check(await c.post("/devices/bulk", csv=csv, params=params), 200)
    assert job["total"] == 10_000
    await api.wait_jobs()
    elapsed = time.monotonic() - started
    status = check(await c.get(f"/devices/bulk/{job['jobId']}"), 200)
    assert status["jobDone"] is True and status["processed"] == 10_000
    assert status["status"]["success"] == 9_950
    errors = status["status"]["errors"]
    assert len(errors) == 50 and {e["row"] for e in errors} == set(bad)
    by_row = {e["row"]: e for e in errors}
    for line_no, kind in bad.items():
        error = by_row[line_no]
        assert error["message"], error
        if kind in ("id", "pac", "lat"):
            assert error["field"] == kind, error
        if kind == "duplicate":
            assert "repeats the device of row 2" in error["message"]
        if kind == "cells":
            assert "at most 5" in error["message"]
    assert await api.pool.fetchval("SELECT count(*) FROM devices WHERE device_type_id = $1", dt) == 9_950
    assert await api.pool.fetchval("SELECT tokens_used FROM contract_infos WHERE id = $1", t.contract) == 9_950
    print(f"10,000-line CSV: dry run {dry_s:.2f} s, job {elapsed:.2f} s")
    assert elapsed < 30 and dry_s < 30

    again = check(await c.post("/devices/bulk", csv="id;pac\n100000;0000000000000000\n", params=params), 200)
    await api.wait_jobs()
    status = check(await c.get(f"/devices/bulk/{again['jobId']}"), 200)
    assert status["status"]["errors"][0]["message"] == "device already exists"


async def test_json_bulk_operations_and_token_rules(api):
    t = await make_tenant(api, "Bulk ops")
    c = t.client
    dt = await make_device_type(c, t)
    same_order = check(await api.root.post("/contract-infos/", {"name": "same order", "groupId": t.group,
                                                                "orderId": "order-1"}), 201)["id"]
    await api.pool.execute("UPDATE contract_infos SET order_id = 'order-1' WHERE id = $1", t.contract)
    other_order = check(await api.root.post("/contract-infos/", {"name": "other", "groupId": t.group,
                                                                 "tokenDuration": 1}), 201)["id"]
    dt_same = check(await c.post("/device-types/", {"name": "same", "groupId": t.group,
                                                    "contractId": t.contract}), 201)["id"]
    dt_move = check(await c.post("/device-types/", {"name": "move", "groupId": t.group,
                                                    "contractId": same_order}), 201)["id"]
    dt_new = check(await c.post("/device-types/", {"name": "new", "groupId": t.group,
                                                   "contractId": other_order}), 201)["id"]
    created = check(await c.post("/devices/bulk", {"deviceTypeId": dt, "prefix": "dev-", "data": [
        {"id": f"C{i}", "pac": f"{i:016X}"} for i in range(6)] + [{"id": "C0", "pac": "1" * 16}, {"id": "bad"}]}),
        200)
    assert created["total"] == 8
    await api.wait_jobs()
    status = check(await c.get(f"/devices/bulk/{created['jobId']}"), 200)
    assert status["status"]["success"] == 6 and [e["row"] for e in status["status"]["errors"]] == [7, 8]
    assert check(await c.get("/devices/C1"), 200)["name"] == "dev-C1"
    ends = {r["id"]: r["token_end"] for r in await api.pool.fetch("SELECT id, token_end FROM devices "
                                                                   "WHERE id LIKE 'C%'")}

    edit = check(await c.put("/devices/bulk", {"data": [{"id": "C0", "name": "renamed"}, {"id": "FFFF"}]}), 201)
    await api.wait_jobs()
    status = check(await c.get(f"/devices/bulk/{edit['jobId']}"), 200)
    assert status["status"]["success"] == 1 and status["status"]["errors"][0]["entity"] == "FFFF"
    assert check(await c.get("/devices/C0"), 200)["name"] == "renamed"

    for target, ids in ((dt_same, ["C0"]), (dt_move, ["C1"]), (dt_new, ["C2"])):
        job = check(await c.post("/devices/bulk/transfer", {"deviceTypeId": target,
                                                            "data": [{"id": i, "keepHistory": True} for i in ids]}),
                    200)
        await api.wait_jobs()
        assert check(await c.get(f"/devices/bulk/{job['jobId']}"), 200)["status"]["errors"] == []
    rows = {r["id"]: r for r in await api.pool.fetch("SELECT * FROM devices WHERE id IN ('C0', 'C1', 'C2')")}
    assert rows["C0"]["contract_id"] == t.contract and rows["C0"]["token_end"] == ends["C0"]
    assert rows["C1"]["contract_id"] == same_order and rows["C1"]["token_end"] == ends["C1"]
    assert rows["C2"]["contract_id"] == other_order and rows["C2"]["token_end"] != ends["C2"]
    assert rows["C2"]["device_type_id"] == dt_new

    for kind, state in (("suspend", 6), ("resume", 0)):
        job = check(await c.post(f"/devices/bulk/{kind}", {"data": ["C3", "C4", "0"]}), 201)
        await api.wait_jobs()
        status = check(await c.get(f"/devices/bulk/{kind}/{job['jobId']}"), 200)
        assert status["jobDone"] and status["status"]["nbSuccess"] == 2 and status["status"]["nbErrors"] == 1
        assert check(await c.get("/devices/C3"), 200)["state"] == state

    job = check(await c.post("/devices/bulk/unsubscribe", csv="id;unsubscriptionTime\nC3;1000\nC4\n"), 201)
    await api.wait_jobs()
    assert check(await c.get(f"/devices/bulk/unsubscribe/{job['jobId']}"), 200)["status"]["nbSuccess"] == 2
    assert check(await c.get("/devices/C3"), 200)["token"]["state"] == 1

    job = check(await c.post("/devices/bulk/restart", csv="C3\nC5\n"), 201)
    await api.wait_jobs()
    assert check(await c.get(f"/devices/bulk/restart/{job['jobId']}"), 200)["status"]["nbSuccess"] == 2
    assert check(await c.get("/devices/C3"), 200)["token"]["state"] == 0

    check(await c.post("/devices/", {"id": "D1", "name": "spare", "pac": "0" * 16, "deviceTypeId": dt,
                                     "activable": False}), 201)
    replaced = check(await c.post("/devices/bulk/replace", {"data": [
        {"deviceId": "C5", "targetDeviceId": "D1"}, {"deviceId": "C3", "targetDeviceId": "C2"}]}), 200)
    assert replaced["status"]["success"] == 1 and replaced["status"]["errors"][0]["field"] == "targetDeviceId"
    assert check(await c.get("/devices/D1"), 200)["token"]["state"] == 0
    assert check(await c.get("/devices/C5"), 200)["token"] == {"state": 1, "detailMessage": "Off Contract"}, \
        "its token moved: no token, shown as off contract without an end"

    dry = check(await c.post("/devices/bulk/delete", csv="C0\nC1\n", params={"dryRun": "true"}), 200)
    assert dry["status"]["success"] == 2
    check(await c.get("/devices/C0"), 200)
    job = check(await c.post("/devices/bulk/delete", csv="C0\nC1\n"), 201)
    await api.wait_jobs()
    assert check(await c.get(f"/devices/bulk/delete/{job['jobId']}"), 200)["status"]["nbSuccess"] == 2
    assert (await c.get("/devices/C0")).status == 404


async def test_bulk_bad_envelopes(api):
    t = await make_tenant(api, "Bulk bad")
    c = t.client
    r = await c.post("/devices/bulk", {"data": "nope"})
    assert r.status == 400 and {e["field"] for e in r.body["errors"]} == {"deviceTypeId", "data"}
    r = await c.post("/devices/bulk", csv="1;0000000000000000\n")
    assert r.status == 400 and r.body["errors"][0] == {"type": "query", "field": "deviceTypeId",
                                                       "message": "is required"}
    r = await c.post("/devices/bulk/transfer", {"deviceTypeId": "0" * 24, "data": []})
    assert r.status == 404
    r = await c.call("POST", "/devices/bulk/restart", b"x", headers={"Content-Type": "image/png"})
    assert r.status == 415


async def test_restart_every_device_of_a_type_or_contract(api):
    t = await make_tenant(api, "Restart all")
    c = t.client
    dt = await make_device_type(c, t)
    check(await c.post("/devices/bulk", {"deviceTypeId": dt, "data": [{"id": f"E{i}", "pac": "0" * 16}
                                                                     for i in range(3)]}), 200)
    await api.wait_jobs()
    await api.pool.execute("UPDATE devices SET token_end = 1 WHERE id = 'E1'")
    job = check(await c.post(f"/device-types/{dt}/bulk/restart"), 201)
    await api.wait_jobs()
    status = check(await c.get(f"/device-types/bulk/restart/{job['jobId']}"), 200)
    assert status["jobDone"] and status["status"]["total"] == 3 and status["status"]["nbSuccess"] == 3
    assert check(await c.get("/devices/E1"), 200)["token"]["state"] == 0
    job = check(await c.post(f"/contract-infos/{t.contract}/bulk/restart"), 201)
    await api.wait_jobs()
    assert check(await c.get(f"/contract-infos/bulk/restart/{job['jobId']}"), 200)["status"]["nbSuccess"] == 3


async def test_dry_run_lists_accepted_rows_and_csv_edit_sets_flags_on_every_row(api):
    """Backhaul extensions used by the console's series pages: a dry run's `accepted` rows, a CSV line that
    is not UTF-8 reported by number, a CSV edit's `?activable=&automaticRenewal=&prototype=`."""
    t = await make_tenant(api, "Bulk extensions")
    c = t.client
    dt = await make_device_type(c, t)
    upload = b"id;pac\n5E1;0000000000000001\n5E\xff2;0000000000000002\n5E3;0000000000000003\n"
    dry = check(await c.post("/devices/bulk", upload, params={"deviceTypeId": dt, "dryRun": "true"},
                             headers={"Content-Type": "text/csv"}), 200)
    assert dry["accepted"] == [{"row": 2, "entity": "5E1"}, {"row": 4, "entity": "5E3"}], dry
    assert [(e["row"], e["message"]) for e in dry["status"]["errors"]] == [(3, "not UTF-8 text (byte 3 of the line)")]
    job = check(await c.post("/devices/bulk", upload, params={"deviceTypeId": dt},
                             headers={"Content-Type": "text/csv"}), 200)
    await api.wait_jobs()
    assert check(await c.get(f"/devices/bulk/{job['jobId']}"), 200)["status"]["success"] == 2

    flags = {"automaticRenewal": "false", "prototype": "true"}
    dry = check(await c.put("/devices/bulk", csv="5E1;renamed\n5E3\n5E9\n", params={**flags, "dryRun": "true"}), 200)
    assert dry["accepted"] == [{"row": 1, "entity": "5E1"}, {"row": 2, "entity": "5E3"}]
    assert [(e["row"], e["entity"], e["message"]) for e in dry["status"]["errors"]] == [(3, "5E9", "device not found")]
    assert check(await c.get("/devices/5E3"), 200)["prototype"] is False, "a dry run changes nothing"
    check(await c.put("/devices/bulk", csv="5E1;renamed\n5E3\n5E9\n", params=flags), 201)
    await api.wait_jobs()
    for ident, name in (("5E1", "renamed"), ("5E3", "5E3")):
        device = check(await c.get(f"/devices/{ident}"), 200)
        assert (device["name"], device["automaticRenewal"], device["prototype"]) == (name, False, True)
