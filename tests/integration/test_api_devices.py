"""Contracts, device types, callbacks, devices, tokens and message history through the running API."""
from __future__ import annotations

import pytest

from oss.clock import now_ms
from tests.api_support import api, check, make_device_type, make_tenant  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
NO_TOKEN = {"state": 1, "detailMessage": "Off Contract"}


async def test_contract_tokens_and_fixed_contract(api):
    t = await make_tenant(api, "Tokens", max_tokens=2)
    c = t.client
    dt = await make_device_type(c, t, keepAlive=0)
    for ident in ("A1", "A2"):
        check(await c.post("/devices/", {"id": ident, "name": ident, "pac": "0" * 16, "deviceTypeId": dt}), 201)
    full = await c.post("/devices/", {"id": "A3", "name": "A3", "pac": "0" * 16, "deviceTypeId": dt})
    assert full.status == 400 and "no token left" in full.body["errors"][0]["message"]
    check(await c.post("/devices/", {"id": "A4", "name": "spare", "pac": "0" * 16, "deviceTypeId": dt,
                                     "activable": False}), 201)
    contract = check(await c.get(f"/contract-infos/{t.contract}", params={"fields": "group(name)"}), 200)
    assert contract["maxTokens"] == 2 and contract["tokensInUse"] == 2 and contract["tokensUsed"] == 2
    assert contract["group"]["name"] == "Tokens"
    held = check(await c.get(f"/contract-infos/{t.contract}/devices"), 200)["data"]
    assert sorted(d["id"] for d in held) == ["A1", "A2"]
    spare = check(await c.get("/devices/A4"), 200)
    assert spare["state"] == 7 and spare["token"] == NO_TOKEN, "no token: shown as off contract, without an end"
    other = check(await api.root.post("/contract-infos/", {"name": "other", "groupId": t.group}), 201)["id"]
    r = await c.put(f"/device-types/{dt}", {"contractId": other})
    assert r.status == 400 and r.body["errors"][0]["field"] == "contractId"
    check(await c.put(f"/device-types/{dt}", {"contractId": t.contract, "name": "same contract"}), 204)
    check(await c.delete("/devices/A1"), 204)
    check(await c.post("/devices/", {"id": "A3", "name": "A3", "pac": "0" * 16, "deviceTypeId": dt}), 201)
    assert (await c.delete(f"/contract-infos/{t.contract}")).status == 409


async def test_device_type_validation(api):
    t = await make_tenant(api, "Types")
    c = t.client
    bad = await c.post("/device-types/", {"name": "x", "groupId": t.group, "contractId": t.contract,
                                          "keepAlive": 30, "downlinkMode": 0, "downlinkDataString": "zz",
                                          "payloadType": 3, "payloadConfig": "temp::int:99",
                                          "alertEmail": "not-an-email"})
    assert bad.status == 400
    fields = {e["field"] for e in bad.body["errors"]}
    assert fields == {"alertEmail"}
    bad = await c.post("/device-types/", {"name": "x", "groupId": t.group, "contractId": t.contract,
                                          "keepAlive": 30, "downlinkMode": 0, "downlinkDataString": "zz",
                                          "payloadType": 3, "payloadConfig": "temp::int:99"})
    fields = {e["field"]: e["message"] for e in bad.body["errors"]}
    assert set(fields) == {"keepAlive", "downlinkDataString", "payloadConfig"}
    assert "at least 60 seconds" in fields["keepAlive"]
    dt = await make_device_type(c, t, keepAlive=120, downlinkMode=0, downlinkDataString="{time}{tapId}0000",
                                payloadType=3, payloadConfig="temp::int:8 humidity::uint:16:little-endian",
                                alertEmail="ops@example.com")
    got = check(await c.get(f"/device-types/{dt}", params={"fields": "group(name),contract(name)"}), 200)
    assert got["keepAlive"] == 120 and got["contract"]["name"] == "Types contract"
    assert got["group"]["name"] == "Types" and got["payloadType"] == 3
    check(await c.put(f"/device-types/{dt}", {"alertEmail": None, "keepAlive": 0}), 204)
    got = check(await c.get(f"/device-types/{dt}"), 200)
    assert "alertEmail" not in got and got["keepAlive"] == 0
    listed = check(await c.get("/device-types/", params={"payloadType": "3"}), 200)["data"]
    assert [x["id"] for x in listed] == [dt]
    check(await c.delete(f"/device-types/{dt}"), 204)


async def test_callbacks_crud_enable_downlink(api):
    t = await make_tenant(api, "Hooks")
    c = t.client
    dt = await make_device_type(c, t, downlinkMode=1)
    base = f"/device-types/{dt}/callbacks"
    uplink = check(await c.post(base, {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
                                       "url": "http://127.0.0.1:9/up?d={device}", "httpMethod": "POST",
                                       "bodyTemplate": '{"data": "{data}", "t": {time}}',
                                       "contentType": "application/json"}), 201)["id"]
    bidir = check(await c.post(base, {"channel": "URL", "callbackType": 0, "callbackSubtype": 3, "enabled": True,
                                      "url": "http://127.0.0.1:9/bidir", "httpMethod": "POST",
                                      "bodyTemplate": "device={device}&ack={ack}"}), 201)["id"]
    check(await c.post(base, {"channel": "EMAIL", "callbackType": 2, "enabled": True,
                              "recipient": "ops@example.com", "subject": "{device} down", "message": "{info}"}), 201)
    bad = await c.post(base, {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
                              "url": "http://x/{nosuch}", "httpMethod": "GET", "headers": {"Host": "x"}})
    assert bad.status == 400 and bad.body["errors"][0]["field"] in ("url", "headers.Host")
    bad = await c.post(base, {"channel": "URL", "callbackType": 1, "callbackSubtype": 2, "enabled": True,
                              "url": "http://x/", "httpMethod": "GET"})
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "callbackSubtype"
    bad = await c.post(base, {"channel": "FAX", "callbackType": 0, "enabled": True})
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "channel"
    row = await api.pool.fetchrow("SELECT callback_type, callback_subtype FROM callbacks WHERE id = $1", bidir)
    assert tuple(row) == (0, 1)
    check(await c.put(f"{base}/{bidir}/downlink"), 204)
    assert (await c.put(f"{base}/{uplink}/downlink")).status == 400
    check(await c.put(f"{base}/{uplink}/enable", params={"enabled": "false"}), 204)
    check(await c.put(f"{base}/{uplink}", {"url": "http://127.0.0.1:9/v2?d={device}&s={seqNumber}"}), 204)
    listed = {cb["id"]: cb for cb in check(await c.get(base), 200)["data"]}
    assert listed[uplink]["enabled"] is False and listed[uplink]["url"].endswith("{seqNumber}")
    assert listed[bidir]["downlinkHook"] is True and listed[bidir]["callbackSubtype"] == 3
    assert (await c.put(f"{base}/{uplink}", {"bodyTemplate": '{"x": {nope}}'})).status == 400
    check(await c.delete(f"{base}/{uplink}"), 204)
    assert (await c.delete(f"{base}/{uplink}")).status == 404
    outbox = await api.pool.fetchval("SELECT count(*) FROM config_outbox WHERE key = $1", f"callback:{uplink}")
    assert outbox >= 1


async def test_device_crud_disengage_unsubscribe(api):
    t = await make_tenant(api, "Things")
    c = t.client
    dt = await make_device_type(c, t)
    body = {"id": "00ab12cd", "name": "meter", "pac": "0123456789ABCDEF", "deviceTypeId": dt, "lat": 43.6,
            "lng": 1.44, "productCertificate": {"key": "P_0001"}}
    check(await c.post("/devices/", body), 201)
    assert (await c.post("/devices/", body)).status == 409
    d = check(await c.get("/devices/00AB12CD", params={"fields": "deviceType(name),group(name,level)"}), 200)
    assert d["deviceType"]["name"] == "sensor" and d["group"]["name"] == "Things" and d["group"]["level"] == 1
    assert d["token"]["state"] == 0 and d["state"] == 0 and d["comState"] == 5 and d["lqi"] == 4
    assert d["location"] == {"lat": 43.6, "lng": 1.44} and d["productCertificate"] == {"key": "P_0001"}
    check(await c.put("/devices/00AB12CD", {"name": "meter 2", "lat": None, "lng": None}), 204)
    d = check(await c.get("/devices/00ab12cd"), 200)
    assert d["name"] == "meter 2" and d["location"] == {"lat": 0.0, "lng": 0.0}, "no fixed position: 0, 0"
    check(await c.post("/devices/00AB12CD/disengage"), 204)
    assert await api.pool.fetchval("SELECT disengaged_at FROM devices WHERE id = '00AB12CD'") > 0
    check(await c.put(f"/device-types/{dt}/disengage"), 204)
    check(await c.put("/devices/00AB12CD/unsubscribe", {"unsubscriptionTime": now_ms() - 1000}), 204)
    d = check(await c.get("/devices/00AB12CD"), 200)
    assert d["token"]["state"] == 1 and d["state"] == 2 and d["automaticRenewal"] is False
    bad = await c.post("/devices/", {"id": "XYZ", "name": "", "pac": "12", "deviceTypeId": dt, "lat": 91})
    assert {e["field"] for e in bad.body["errors"]} == {"id", "name", "pac", "lat"}
    assert (await c.get("/devices/not-hex")).status == 400
    check(await c.delete("/devices/00AB12CD"), 204)
    assert (await c.get("/devices/00AB12CD")).status == 404


async def _store_messages(api, device: str, device_type: str, group: str, count: int) -> list[str]:
    base = now_ms() - count * 1000
    ids = []
    for i in range(count):
        mid = f"{device}:{i}"
        ids.append(mid)
        await api.pool.execute(
            "INSERT INTO messages(id, device_id, device_type_id, time, seq_number, data, rinfos, lqi, "
            "computed_location, registration_id) VALUES ($1, $2, $3, $4, $5, $6, $7, 2, $8, "
            "(SELECT registration_id FROM devices WHERE id = $2))", mid, device, device_type,
            base + i * 1000, i, f"{i:02x}", [{"baseStation": "1A2B", "rssi": -120.0, "snr": 10.5, "freq": 868.1,
                                              "rep": 1}],
            {"lat": 43.0, "lng": 1.0, "radius": 1000, "source": 2, "status": 1} if i % 2 else None)
        await api.pool.execute(
            "INSERT INTO callback_attempts(delivery_id, attempt, message_id, device_id, callback_id, time, status, "
            "info, registration_id) VALUES ($1, 1, $2, $3, 'cb1', $4, 200, 'OK', "
            "(SELECT registration_id FROM devices WHERE id = $3))", f"d{mid}", mid, device, base + i * 1000 + 50)
    await api.pool.execute(
        "INSERT INTO undelivered_callbacks(delivery_id, device_id, device_type_id, group_id, callback_id, time, "
        "data, snr, status, message, callback, parameters, delivery, registration_id) VALUES ($1, $2, $3, $4, "
        "'cb1', $5, 'ff', 9.5, 600, 'connection refused', $6, $7, '{}', "
        "(SELECT registration_id FROM devices WHERE id = $2))", f"dead-{device}", device, device_type, group, now_ms(),
        {"url": "http://x/", "method": "POST"}, {"device": device})
    return ids


async def test_messages_paging_to_the_end_and_history(api):
    t = await make_tenant(api, "History")
    c = t.client
    dt = await make_device_type(c, t)
    check(await c.post("/devices/", {"id": "BEEF", "name": "b", "pac": "0" * 16, "deviceTypeId": dt}), 201)
    await _store_messages(api, "BEEF", dt, t.group, 25)
    seen, url, pages = [], "/devices/BEEF/messages", 0
    params = {"limit": "10", "fields": "rinfos(rep,baseStation(name))"}
    while url:
        page = check(await c.get(url, params=params), 200)
        params = None
        pages += 1
        seen += [m["seqNumber"] for m in page["data"]]
        url = page["paging"].get("next")
    assert pages == 3 and seen == list(range(24, -1, -1))
    first = check(await c.get("/devices/BEEF/messages", params={"limit": "1"}), 200)["data"][0]
    assert first["rinfos"][0]["cbStatus"] == [{"status": 200, "info": "OK", "cbDef": "cb1",
                                               "time": first["time"] + 50}]
    assert first["rinfos"][0]["baseStation"] == {"id": "1A2B"} and first["device"] == {"id": "BEEF", "name": "b"}
    window = check(await c.get("/devices/BEEF/messages", params={"since": str(first["time"] - 5000)}), 200)
    assert len(window["data"]) == 6
    metric = check(await c.get("/devices/BEEF/messages/metric"), 200)
    assert metric == {"lastDay": 25, "lastWeek": 25, "lastMonth": 25}
    locations = check(await c.get("/devices/BEEF/locations"), 200)["data"]
    assert len(locations) == 12 and locations[0]["valid"] is True
    assert len(check(await c.get(f"/device-types/{dt}/messages"), 200)["data"]) == 25
    for path in ("/devices/BEEF", f"/device-types/{dt}", f"/groups/{t.group}"):
        failed = check(await c.get(f"{path}/callbacks-not-delivered"), 200)["data"]
        assert len(failed) == 1 and failed[0]["status"] == "600" and failed[0]["callback"]["url"] == "http://x/"
    failed = check(await c.get(f"/groups/{t.group}/callbacks-not-delivered"), 200)["data"][0]
    assert failed["device"] == "BEEF" and failed["deviceType"] == dt


async def test_purge_old_messages(api):
    from oss.retention import purge_old_messages
    await api.pool.execute("INSERT INTO messages(id, device_id, time, seq_number, data) VALUES "
                           "('old:1', 'OLD', 1000, 1, ''), ('new:1', 'OLD', $1, 2, '')", now_ms())
    deleted = await purge_old_messages(api.pool, 30)
    assert deleted["messages"] >= 1
    assert await api.pool.fetchval("SELECT count(*) FROM messages WHERE device_id = 'OLD'") == 1


async def test_communication_status_with_missed_keep_alive_periods(api):
    t = await make_tenant(api, "Watch")
    c = t.client
    watched = await make_device_type(c, t, keepAlive=600)
    unwatched = await make_device_type(c, t, keepAlive=0)
    for ident, dt in (("5EE1", watched), ("5EE2", unwatched), ("5EE3", watched)):
        check(await c.post("/devices/", {"id": ident, "name": ident, "pac": "0" * 16, "deviceTypeId": dt}), 201)
    # What the store writes: KO after an ERROR event, OK once the device is heard again.
    await api.pool.executemany(
        "INSERT INTO device_status(device_id, last_com, com_state, registration_id) "
        "VALUES ($1, $2, $3, (SELECT registration_id FROM devices WHERE id = $1))",
        [("5EE1", now_ms() - 2_500_000, 3), ("5EE2", now_ms(), 1), ("5EE3", now_ms(), 1)])
    ko = check(await c.get("/devices/5EE1"), 200)
    assert ko["comState"] == 3 and ko["comStateMissedPeriods"] == 4   # 2,500 s / 600 s
    assert check(await c.get("/devices/5EE2"), 200)["comState"] == 0  # heard, no keep-alive: NO
    ok = check(await c.get("/devices/5EE3"), 200)
    assert ok["comState"] == 1 and "comStateMissedPeriods" not in ok


async def _heard(api, device: str, last_com: int) -> None:
    """What the store writes when a device is heard: its radio state of the current registration."""
    await api.pool.execute(
        "INSERT INTO device_status(device_id, last_com, com_state, registration_id) "
        "VALUES ($1, $2, 1, (SELECT registration_id FROM devices WHERE id = $1))", device, last_com)


async def test_list_filters_by_name_state_and_last_seen_and_counts(api):
    """Backhaul extensions of GET /v2/devices/: name, state, lastComSince/Before, and /v2/devices/count."""
    t = await make_tenant(api, "Filters")
    c = t.client
    dt = await make_device_type(c, t)
    other = await make_tenant(api, "Filters other")
    check(await other.client.post("/devices/", {"id": "F0F9", "name": "Meter 50%", "pac": "0" * 16,
                                                "deviceTypeId": await make_device_type(other.client, other)}), 201)
    now = now_ms()
    for ident, name, heard in (("F001", "Meter 50% north", now - 3_600_000), ("F002", "meter south", now - 60_000),
                               ("F003", "Pump", None), ("F004", "Meter_x", now - 86_400_000)):
        check(await c.post("/devices/", {"id": ident, "name": name, "pac": "0" * 16, "deviceTypeId": dt}), 201)
        if heard:
            await _heard(api, ident, heard)
    check(await c.post("/devices/", {"id": "F005", "name": "spare", "pac": "0" * 16, "deviceTypeId": dt,
                                     "activable": False}), 201)

    async def ids(**query: str) -> list[str]:
        listed = check(await c.get("/devices/", params={"sort": "id", **query}), 200)["data"]
        counted = check(await c.get("/devices/count", params=query), 200)["count"]
        assert counted == len(listed), query
        return [d["id"] for d in listed]

    assert await ids() == ["F001", "F002", "F003", "F004", "F005"]
    assert await ids(name="METER") == ["F001", "F002", "F004"]
    assert await ids(name="50%") == ["F001"], "% is a character to find, not a wildcard"
    assert await ids(name="r_") == ["F004"], "_ too"
    assert await ids(state="7") == ["F005"]
    assert await ids(state="0,7") == ["F001", "F002", "F003", "F004", "F005"]
    assert await ids(lastComSince=str(now - 7_200_000)) == ["F001", "F002"]
    assert await ids(lastComSince=str(now - 7_200_000), lastComBefore=str(now - 600_000)) == ["F001"]
    assert await ids(lastComBefore=str(now)) == ["F001", "F002", "F004"], "never heard: not in a last-seen window"
    assert await ids(name="meter", lastComBefore=str(now - 600_000)) == ["F001", "F004"]
    # Counted over every page, not one.
    assert check(await c.get("/devices/count", params={"limit": "1"}), 200) == {"count": 5}
    newest = check(await c.get("/devices/", params={"sort": "-creationTime", "limit": "1"}), 200)["data"]
    assert newest[0]["id"] == "F005"
    for query, name in (({"state": "9"}, "state"), ({"state": "x"}, "state"), ({"lastComSince": "-1"}, "lastComSince"),
                        ({"lastComSince": "10", "lastComBefore": "5"}, "lastComBefore"), ({"name": "n" * 101}, "name")):
        for path in ("/devices/", "/devices/count"):
            bad = await c.get(path, params=query)
            assert bad.status == 400 and bad.body["errors"][0]["field"] == name, (path, query, bad.body)


async def test_deleted_devices_are_listed_to_their_group_only(api):
    t = await make_tenant(api, "Deleting")
    other = await make_tenant(api, "Deleting other")
    dt = await make_device_type(t.client, t)
    for ident in ("DE01", "DE02", "DE03"):
        check(await t.client.post("/devices/", {"id": ident, "name": ident, "pac": "0" * 16, "deviceTypeId": dt}),
              201)
    check(await t.client.delete("/devices/DE01"), 204)
    check(await t.client.delete("/devices/DE03"), 204)
    deleted = check(await t.client.get("/deleted-devices/"), 200)["data"]
    assert [d["id"] for d in deleted] == ["DE03", "DE01"]
    assert deleted[0]["group"] == {"id": t.group} and deleted[0]["deletionTime"] >= deleted[0]["creationTime"]
    assert [d["id"] for d in check(await t.client.get("/deleted-devices/", params={"id": "de01"}), 200)["data"]] \
        == ["DE01"]
    assert check(await other.client.get("/deleted-devices/"), 200)["data"] == []
    assert "DE02" not in [d["id"] for d in deleted]


async def test_device_events_are_listed_newest_first(api):
    t = await make_tenant(api, "Events")
    other = await make_tenant(api, "Events other")
    dt = await make_device_type(t.client, t, keepAlive=600)
    check(await t.client.post("/devices/", {"id": "E0E0", "name": "e", "pac": "0" * 16, "deviceTypeId": dt}), 201)
    now = now_ms()
    for n, (kind, extra) in enumerate((("ERROR", {"info": "keep-alive missed", "severity": "ERROR"}),
                                       ("RESTORED", {"info": "heard again", "severity": "INFO"}),
                                       ("SEQUENCE_BREAK", {"deviceLastSeqnumber": 4, "deviceMessageSeqnumber": 9}))):
        body = {"id": f"E0E0:{kind}:{n}", "type": kind, "device": "E0E0", "groupId": t.group, "time": now + n,
                **extra}
        await api.pool.execute("INSERT INTO device_events(id, device_id, type, time, body, registration_id) "
                               "VALUES ($1, 'E0E0', $2, $3, $4, (SELECT registration_id FROM devices "
                               "WHERE id = 'E0E0'))", body["id"], kind, body["time"], body)
    events = check(await t.client.get("/devices/E0E0/events"), 200)["data"]
    assert [e["type"] for e in events] == ["SEQUENCE_BREAK", "RESTORED", "ERROR"]
    assert events[2] == {"id": "E0E0:ERROR:0", "type": "ERROR", "time": now, "info": "keep-alive missed",
                         "severity": "ERROR"}
    only = check(await t.client.get("/devices/E0E0/events", params={"type": "error,restored"}), 200)["data"]
    assert [e["type"] for e in only] == ["RESTORED", "ERROR"]
    paged = check(await t.client.get("/devices/E0E0/events", params={"limit": "2"}), 200)
    assert len(paged["data"]) == 2 and "pageId=" in paged["paging"]["next"]
    assert (await other.client.get("/devices/E0E0/events")).status == 404
