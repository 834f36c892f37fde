"""A device's history belongs to its registration: delete, register the same id again, transfer.

On the real pipeline (relay, ingest, router, delivery, store) and the real API:
tenant B's device sends messages whose callbacks succeed and fail (undelivered
records), is deleted while retries are still in flight, and tenant A registers
the same id. A sees none of B's messages, metrics, locations, undelivered
records or radio status, not even the retries that end after the deletion,
and its device starts afresh (a lower sequence number is accepted). Transfers
to another group hide the history unless keepHistory moves it along.
"""
from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
from aiohttp import web

from backhaul import db
from backhaul.topics import topic
from schemas.topics import DELIVERY_RESULTS
from tests.api_support import Client, check, running_api
from tests.conftest import consumer_group_caught_up, frame, publish_frames, read_topic, wait_until

pytestmark = pytest.mark.integration

STATION = "5A01"
DEVICE = "5AFE"
PAC = "0" * 16


async def _tenant(root: Client, root_group: str, name: str, ok_url: str, failing_url: str) -> dict:
    group = check(await root.post("/groups/", {"name": f"Tenant {name}", "parentId": root_group}), 201)["id"]
    contract = check(await root.post("/contract-infos/", {"name": f"{name} contract", "groupId": group,
                                                          "maxTokens": 0}), 201)["id"]
    dtype = check(await root.post("/device-types/", {"name": f"{name} type", "groupId": group,
                                                     "contractId": contract}), 201)["id"]
    for url in (ok_url, failing_url):
        check(await root.post(f"/device-types/{dtype}/callbacks", {
            "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
            "url": f"{url}?tenant={name}&device={{device}}&seq={{seqNumber}}", "httpMethod": "GET"}), 201)
    return {"group": group, "type": dtype}


async def _history(api: Client, device: str) -> dict:
    """Everything a caller can read of a device's history."""
    return {
        "messages": check(await api.get(f"/devices/{device}/messages"), 200)["data"],
        "metric": check(await api.get(f"/devices/{device}/messages/metric"), 200),
        "locations": check(await api.get(f"/devices/{device}/locations"), 200)["data"],
        "undelivered": check(await api.get(f"/devices/{device}/callbacks-not-delivered"), 200)["data"],
    }


def _radio_status(device: dict) -> dict:
    return {k: device.get(k) for k in ("sequenceNumber", "lastCom", "comState", "lastComputedLocation")}


async def test_history_stays_with_its_registration(isolated, workers, make_receiver):
    ok = await make_receiver()

    async def failing(request: web.Request, _) -> web.Response:
        await asyncio.sleep(0.5)  # keeps retries in flight across the deletion
        return web.Response(status=503)

    down = await make_receiver(failing)
    worker = workers("relay,ingest,router,delivery,store", isolated, BACKHAUL_ADVANCED_WINDOW_S="1",
                     BACKHAUL_RETRY_SCHEDULE_S="1,1,1", BACKHAUL_RETRY_JITTER="0",
                     BACKHAUL_BREAKER_FAILURES="1000")  # the failing endpoint's retries are not parked
    await worker.wait_ready()
    conn = await db.connect()
    await conn.execute("INSERT INTO base_stations(id, name, lat, lng) VALUES ($1, 'test', 43.6, 1.4)", STATION)
    async with running_api() as (env, root_group):
        root = env.root
        b = await _tenant(root, root_group, "B", f"{ok.url}/b", f"{down.url}/b")
        a = await _tenant(root, root_group, "A", f"{ok.url}/a", f"{down.url}/a")
        b_api = await _admin(root, b["group"])
        a_api = await _admin(root, a["group"])

        # B's device: 5 messages, each with a delivered and an undelivered callback.
        check(await b_api.post("/devices/", {"id": DEVICE, "name": "b", "pac": PAC, "deviceTypeId": b["type"]}), 201)
        await _wait_registered(conn, DEVICE, b["type"], worker)
        await publish_frames([frame(DEVICE, seq, station=STATION, data=f"{seq:02x}") for seq in range(10, 15)])
        b_history = await wait_until(_filled(b_api, DEVICE, messages=5, undelivered=5), 30, "B's history")
        assert b_history["metric"]["lastDay"] == 5
        assert _radio_status(check(await b_api.get(f"/devices/{DEVICE}"), 200))["sequenceNumber"] == 14
        # Two more messages whose failing callback is still being retried when B deletes the device.
        await publish_frames([frame(DEVICE, seq, station=STATION, data=f"{seq:02x}") for seq in (15, 16)])
        await wait_until(_filled(b_api, DEVICE, messages=7, undelivered=5), 30, "B's last messages")

        # B deletes it while retries are still in flight; A registers the same id at once.
        check(await b_api.delete(f"/devices/{DEVICE}"), 204)
        check(await a_api.post("/devices/", {"id": DEVICE, "name": "a", "pac": PAC, "deviceTypeId": a["type"]}), 201)
        a_device = check(await a_api.get(f"/devices/{DEVICE}"), 200)
        assert _radio_status(a_device) == {"sequenceNumber": 0, "lastCom": 0, "comState": 5,
                                           "lastComputedLocation": None}, "never heard (0: README, API v2 compatibility)"
        assert await _history(a_api, DEVICE) == _empty()
        # Let every retry of B's deliveries end (undelivered records written after the deletion).
        await wait_until(lambda: _dead_results(7), 30, "B's 7 failing deliveries to be given up")
        await wait_until(lambda: consumer_group_caught_up(topic("backhaul-store"), [topic(DELIVERY_RESULTS)]), 30,
                         "the store to write every attempt")
        late = await conn.fetchval("SELECT count(*) FROM undelivered_callbacks WHERE device_id = $1", DEVICE)
        assert await _history(a_api, DEVICE) == _empty()
        assert late >= 1, "some of B's undelivered records were still in flight at the deletion"
        print(f"{late} undelivered records of B reached the store after the deletion; A sees none")
        assert check(await b_api.get(f"/device-types/{b['type']}/messages"), 200)["data"] == []
        assert check(await b_api.get(f"/device-types/{b['type']}/callbacks-not-delivered"), 200)["data"] == []
        assert check(await root.get(f"/groups/{root_group}/callbacks-not-delivered"), 200)["data"] == []

        # A's device starts afresh: a lower sequence number than B's last is a new message.
        await _wait_registered(conn, DEVICE, a["type"], worker)
        await publish_frames([frame(DEVICE, 1, station=STATION, data="a1")])
        a_history = await wait_until(_filled(a_api, DEVICE, messages=1, undelivered=1), 30, "A's history")
        assert [m["seqNumber"] for m in a_history["messages"]] == [1]
        assert [m["data"] for m in a_history["messages"]] == ["a1"]
        assert {u["data"] for u in a_history["undelivered"]} == {"a1"}
        assert _radio_status(check(await a_api.get(f"/devices/{DEVICE}"), 200))["sequenceNumber"] == 1
        registration = (await conn.fetchrow("SELECT registration_id FROM devices WHERE id = $1", DEVICE))[0]
        events = await conn.fetch("SELECT type FROM device_events WHERE registration_id = $1", registration)
        assert "OUT_OF_SEQUENCE" not in {e["type"] for e in events}
        # Rows that reached B's purged registration late (DATA_ADVANCED, last attempts) are hidden,
        # and the retention loop deletes them.
        from oss.storage.registrations import purge_late_rows
        assert await purge_late_rows(conn) >= late
        others = await conn.fetchval("SELECT count(*) FROM messages WHERE device_id = $1 AND registration_id <> $2",
                                     DEVICE, registration)
        assert others == 0, "B's late rows are deleted"

        # A transfer to another group (C) hides A's history; keepHistory (C -> D) moves it along.
        c = await _tenant(root, root_group, "C", f"{ok.url}/c", f"{down.url}/c")
        d = await _tenant(root, root_group, "D", f"{ok.url}/d", f"{down.url}/d")
        c_api, d_api = await _admin(root, c["group"]), await _admin(root, d["group"])
        await _transfer(env, root, DEVICE, c["type"], keep_history=False)
        assert await _history(c_api, DEVICE) == _empty()
        assert (await a_api.get(f"/devices/{DEVICE}/messages")).status == 404
        await _wait_registered(conn, DEVICE, c["type"], worker)
        await publish_frames([frame(DEVICE, 2, station=STATION, data="c2")])
        c_history = await wait_until(_filled(c_api, DEVICE, messages=1, undelivered=1), 30, "C's history")
        assert [m["data"] for m in c_history["messages"]] == ["c2"]
        await _transfer(env, root, DEVICE, d["type"], keep_history=True)
        d_history = await _history(d_api, DEVICE)
        assert [m["data"] for m in d_history["messages"]] == ["c2"]
        assert {u["data"] for u in d_history["undelivered"]} == {"c2"}
    await conn.close()
    print(f"registration: B's {len(b_history['messages'])} messages and {len(b_history['undelivered'])} "
          f"undelivered hidden from A; A, C, D each saw only their own")


async def _dead_results(count: int) -> bool:
    results = [orjson.loads(r.value) for r in await read_topic(topic(DELIVERY_RESULTS), timeout=2)]
    return sum(1 for r in results if r.get("dead")) >= count


def _empty() -> dict:
    return {"messages": [], "metric": {"lastDay": 0, "lastWeek": 0, "lastMonth": 0}, "locations": [],
            "undelivered": []}


def _filled(api: Client, device: str, *, messages: int, undelivered: int):
    async def enough():
        history = await _history(api, device)
        has_status = all(m["rinfos"][0].get("cbStatus") for m in history["messages"])
        if len(history["messages"]) >= messages and len(history["undelivered"]) >= undelivered and has_status:
            return history
        return None
    return enough


async def _admin(root: Client, group: str) -> Client:
    from oss.profiles import ADMIN
    user = check(await root.post("/api-users/", {"groupId": group, "name": "admin", "profileIds": [ADMIN]}), 201)
    return root.as_user(user["id"], user["accessToken"])


async def _wait_registered(conn, device: str, device_type: str, worker) -> None:
    """The worker's configuration view holds the device's current registration: the relay has
    published every change, and the view has applied every record of the config topic."""
    assert await conn.fetchval("SELECT registration_id FROM devices WHERE id = $1 AND device_type_id = $2",
                               device, device_type) is not None
    await wait_until(lambda: _outbox_empty(conn), 10, "the relay to publish every change")
    published = await _config_records()
    async with aiohttp.ClientSession() as session:
        async def applied() -> bool:
            return ((await worker.status(session)) or {}).get("config", 0) >= published
        await wait_until(applied, 10, f"the view to apply {published} config records")


async def _outbox_empty(conn) -> bool:
    return await conn.fetchval("SELECT count(*) FROM config_outbox") == 0


async def _config_records() -> int:
    """How many records the config topic holds (what a view that read it all has applied)."""
    from aiokafka import TopicPartition

    from backhaul.kafka import make_consumer
    from backhaul.topics import topic
    from schemas.topics import CONFIG

    consumer = make_consumer(group=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic(CONFIG)) or await _partitions(consumer, topic(CONFIG))
        tps = [TopicPartition(topic(CONFIG), p) for p in partitions]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def _partitions(consumer, name: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(name) or set()


async def _transfer(env, root: Client, device: str, device_type: str, *, keep_history: bool) -> None:
    job = check(await root.post("/devices/bulk/transfer", {"deviceTypeId": device_type, "data": [
        {"id": device, "keepHistory": keep_history}]}), 200)["jobId"]
    await env.wait_jobs()
    status = check(await root.get(f"/devices/bulk/{job}"), 200)
    assert status["status"]["success"] == 1, status
