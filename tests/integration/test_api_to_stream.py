"""Configuration made through the API reaches the stream: end to end on the real stack."""
from __future__ import annotations

import asyncio
import re
import time

import orjson
import pytest

from backhaul import db
from backhaul.kafka import make_producer
from backhaul.topics import topic
from schemas.topics import DELIVERIES, FRAMES
from tests.api_support import check, running_api
from tests.conftest import read_topic

pytestmark = pytest.mark.integration


def frame(device: str, seq: int, station: str = "0B01") -> dict:
    return {"station": station, "device": device, "seqNumber": seq, "time": int(time.time() * 1000),
            "data": "0a0b", "rssi": -110.0, "snr": 15.0, "freq": 868_130_000, "rep": 1, "ack": False}


def histogram(metrics: str, name: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2))
            for m in re.finditer(rf'{name}_bucket{{le="([^"]+)"}} (\S+)', metrics)}


async def test_device_created_through_the_api_gets_its_callback_within_a_second(isolated, workers, receiver):
    worker = workers("relay,ingest,router,delivery,store", isolated, BACKHAUL_ADVANCED_WINDOW_S="2")
    await worker.wait_ready()
    async with running_api() as (env, root):
        await _created_device_gets_its_callback(env.root, root, worker, receiver)


async def _created_device_gets_its_callback(api, root, worker, receiver):
    conn = await db.connect()
    await conn.execute("INSERT INTO base_stations(id, name, lat, lng) VALUES ('0B01', 'station', 43.6, 1.4)")
    await conn.close()
    producer = make_producer()
    await producer.start()
    try:
        contract = check(await api.post("/contract-infos/", {"name": "c", "groupId": root, "maxTokens": 0}), 201)["id"]
        dtype = check(await api.post("/device-types/", {"name": "meters", "groupId": root, "contractId": contract}),
                      201)["id"]
        check(await api.post(f"/device-types/{dtype}/callbacks", {
            "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
            "url": f"{receiver.url}/up?device={{device}}&seq={{seqNumber}}", "httpMethod": "GET"}), 201)
        await asyncio.sleep(1.0)  # the device type and callback are in the view well before the device

        created = time.time()
        check(await api.post("/devices/", {"id": "C0FFEE", "name": "meter", "pac": "00" * 8,
                                           "deviceTypeId": dtype}), 201)
        # The device transmits every 50 ms from the moment it is created.
        seq = 0
        while not receiver.requests and time.time() - created < 5:
            await producer.send_and_wait(topic(FRAMES), orjson.dumps(frame("C0FFEE", seq)), key=b"C0FFEE")
            seq += 1
            await asyncio.sleep(0.05)
        got = await receiver.wait_for(1, timeout=5)
        assert got, worker.log_tail()
        latency = got[0].at - created
        print(f"device created -> first callback: {latency * 1000:.0f} ms")
        assert latency < 1.0
        assert got[0].query["device"] == "C0FFEE"

        # Messages and their callback status are readable through the API.
        accepted = int(got[0].query["seq"])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            body = check(await api.get("/devices/C0FFEE/messages"), 200)
            mine = [m for m in body["data"] if m["seqNumber"] == accepted]
            if mine and any("status" in s for r in mine[0].get("rinfos", []) for s in r.get("cbStatus", [])):
                break
            await asyncio.sleep(0.3)
        assert mine, body
        statuses = [s for r in mine[0]["rinfos"] for s in r.get("cbStatus", [])]
        assert statuses and statuses[0]["status"] == 200

        # Configuration propagation, as the worker measured it: every change under a second.
        for i in range(30):
            check(await api.post("/devices/", {"id": f"D{i:04X}", "name": f"d{i}", "pac": "00" * 8,
                                               "deviceTypeId": dtype}), 201)
        await asyncio.sleep(1.5)
        buckets = histogram(await worker.metrics(), "backhaul_config_propagation_seconds")
        assert buckets["+Inf"] >= 31
        assert buckets["1.0"] == buckets["+Inf"], buckets
    finally:
        await producer.stop()


async def test_stream_goes_on_with_its_view_while_postgresql_is_unreachable(isolated, workers):
    from program.demo.seed import seed_network
    from simulator.network import Device, Network, Station

    conn = await db.connect()
    await seed_network(conn, Network([Station("0B01", 43.6, 1.4)], [Device("BEEF01", 43.6, 1.4)]), name="pgdown",
                       callbacks=[{"callback_subtype": 0, "url": "http://127.0.0.1:9/x?d={device}",
                                   "http_method": "GET"}])
    await conn.close()
    relay = workers("relay", isolated)
    await relay.wait_ready()
    await asyncio.sleep(1.5)
    relay.stop()
    # Ingest and router with no reachable database at all.
    stream = workers("ingest,router", isolated, BACKHAUL_DATABASE_URL="postgresql://backhaul@127.0.0.1:9/none")
    await stream.wait_ready()
    producer = make_producer()
    await producer.start()
    try:
        await producer.send_and_wait(topic(FRAMES), orjson.dumps(frame("BEEF01", 1)), key=b"BEEF01")
    finally:
        await producer.stop()
    deliveries = [orjson.loads(r.value) for r in await read_topic(topic(DELIVERIES), expect=1, timeout=20)]
    assert [d["device"] for d in deliveries] == ["BEEF01"]
    assert deliveries[0]["request"]["url"].endswith("d=BEEF01")
