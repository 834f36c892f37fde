"""The stream engine on the real Kafka: dedup, late frames, replays, wrap, DATA_ADVANCED, crash safety.

The kill -9 tests also check every sink after the crash, not only the engine's topics: with the
store, router and delivery running beside the killed ingest worker, the messages and their
receptions, the devices' radio fields, the events and each callback attempt (cbStatus) as the API
shows them, and the requests the receiver got (an aggregate or event published again after the
crash is not delivered twice)."""
from __future__ import annotations

import asyncio
import math
import random
import time

import orjson
import pytest

from backhaul import db
from backhaul.kafka import make_producer
from backhaul.topics import topic
from program.demo.seed import seed_network
from schemas.topics import DEVICE_EVENTS, FRAMES, MESSAGES, MESSAGES_ADVANCED
from simulator.network import Device, Network, Station, build_network, message_frames
from tests.api_support import Client, check, running_api
from tests.conftest import read_topic, seeded_records, wait_until, wait_views

pytestmark = pytest.mark.integration

STATIONS = [Station("0A01", 43.60, 1.40), Station("0A02", 43.60, 1.50), Station("0A03", 43.70, 1.45)]


async def seed(network: Network, **kw) -> dict[str, str]:
    conn = await db.connect()
    try:
        return await seed_network(conn, network, name="engine", **kw)
    finally:
        await conn.close()


async def fetch(sql: str, *args) -> list:
    conn = await db.connect()
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def api_list(client: Client, path: str, **params: str) -> list[dict]:
    """Every item of an API list, page after page."""
    items: list[dict] = []
    while True:
        page = check(await client.get(path, params={**params, "limit": "100", "offset": str(len(items))}),
                     200)["data"]
        items.extend(page)
        if len(page) < 100:
            return items


async def publish(frames: list[dict]) -> None:
    producer = make_producer()
    await producer.start()
    try:
        futures = [await producer.send(topic(FRAMES), orjson.dumps(f), key=f["device"].encode()) for f in frames]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def frame(device: str, seq: int, station: str, rssi: float, rep: int = 1, t: int | None = None,
          ack: bool = False) -> dict:
    return {"station": station, "device": device, "seqNumber": seq, "time": t or int(time.time() * 1000),
            "data": "c0ffee", "rssi": rssi, "snr": 12.5, "freq": 868_130_000, "rep": rep, "ack": ack}


async def values(name: str, expect: int, timeout: float) -> list[dict]:
    return [orjson.loads(r.value) for r in await read_topic(topic(name), expect=expect, timeout=timeout)]


async def test_dedup_late_replay_wrap_and_advanced(isolated, workers):
    network = Network(STATIONS, [Device("B00001", 43.62, 1.45)])
    await seed(network)
    worker = workers("relay,ingest", isolated, BACKHAUL_ADVANCED_WINDOW_S="4")
    await worker.wait_ready()
    await wait_views([worker], seeded_records(network))

    rssi = {"0A01": -100.0, "0A02": -110.0, "0A03": -120.0}
    # Asking for a downlink: each other station's reception is published too (the dispatcher's choice).
    copies = [frame("B00001", 4095, s, r, rep, ack=True) for s, r in rssi.items() for rep in (1, 2)]
    random.Random(3).shuffle(copies)
    sent_at = time.time()
    await publish(copies)
    messages = await values(MESSAGES, expect=3, timeout=15)
    firsts = [m for m in messages if not m["duplicate"]]
    assert len(firsts) == 1 and firsts[0]["station"] == copies[0]["station"]
    assert sorted(m["station"] for m in messages if m["duplicate"]) == sorted(set(rssi) - {copies[0]["station"]})

    # No further traffic at all: the window must close by the wall clock within 2 s of its deadline.
    advanced_records = await read_topic(topic(MESSAGES_ADVANCED), expect=1, timeout=15)
    closed_by = time.time()
    assert len(advanced_records) == 1
    adv = orjson.loads(advanced_records[0].value)
    assert advanced_records[0].timestamp - adv["deadline"] < 2000   # published (producer time) by then
    assert closed_by - sent_at < 4 + 2 + 1.5
    assert {d["bsId"]: (d["rssi"], d["nbRep"]) for d in adv["duplicates"]} == {s: (r, 2) for s, r in rssi.items()}
    assert (adv["lqi"], adv["linkQuality"]) == ("Excellent", 3)
    # The documented estimate: centroid weighted by received power in mW.
    w = {s: 10 ** (r / 10) for s, r in rssi.items()}
    lat = sum(st.lat * w[st.id] for st in STATIONS) / sum(w.values())
    lng = sum(st.lng * w[st.id] for st in STATIONS) / sum(w.values())
    loc = adv["computedLocation"]
    assert math.isclose(loc["lat"], lat, abs_tol=1e-6) and math.isclose(loc["lng"], lng, abs_tol=1e-6)
    assert loc["status"] == 1 and loc["source"] == 2 and loc["radius"] >= 1000
    assert (adv["fixedLat"], adv["fixedLng"]) == (43.62, 1.45)

    # A late copy, a replay of an older number, then the wrap 4095 -> 0.
    await publish([frame("B00001", 4095, "0A03", -119.0, t=int(time.time() * 1000))])
    await publish([frame("B00001", 4000, "0A01", -100.0)])
    await publish([frame("B00001", 0, "0A02", -111.0)])
    messages = await values(MESSAGES, expect=4, timeout=15)
    assert [(m["seqNumber"], m["duplicate"]) for m in messages][-1] == (0, False)
    assert len(messages) == 4
    events = await values(DEVICE_EVENTS, expect=1, timeout=10)
    assert [(e["type"], e["deviceMessageSeqnumber"]) for e in events] == [("OUT_OF_SEQUENCE", 4000)]
    metrics = await worker.metrics()
    assert "backhaul_late_frames_total 1.0" in metrics
    assert "backhaul_trashed_frames_total 1.0" in metrics


async def test_unknown_device_is_rejected_with_a_reason(isolated, workers):
    network = Network(STATIONS, [Device("B00002", 43.6, 1.4)])
    await seed(network)
    worker = workers("relay,ingest", isolated)
    await worker.wait_ready()
    await wait_views([worker], seeded_records(network))
    await publish([frame("DEAD", 1, "0A01", -100.0)])
    rejected = await values("frames.rejected", expect=1, timeout=10)
    assert [r["reason"] for r in rejected] == ["unknown-device"]
    assert await values(MESSAGES, expect=1, timeout=2) == []


async def test_500_open_windows_survive_kill_9(isolated, workers, receiver):
    async with running_api() as (api, root):
        network = build_network(3, 500, seed=11)
        advanced_cb = {"id": "adv", "callback_type": 1, "callback_subtype": 5, "http_method": "GET",
                       "url": receiver.url + "/adv?d={device}&s={seqNumber}"}
        ids = await seed(network, callbacks=[advanced_cb], parent_group=root)
        env = {"BACKHAUL_ADVANCED_WINDOW_S": "15"}
        sinks = workers("router,delivery,store", isolated)
        worker = workers("relay,ingest", isolated, **env)
        await worker.wait_ready()
        await sinks.wait_ready()
        await wait_views([worker, sinks], seeded_records(network, 1))
        rng = random.Random(5)
        frames = [f for d in network.devices for f in message_frames(d, rng, max_stations=3)]
        half = len(frames) // 2
        await publish(frames[:half])
        await asyncio.sleep(0.3)
        worker.kill9()                                  # mid-stream, windows open
        await publish(frames[half:])
        worker = workers("relay,ingest", isolated, **env)
        await worker.wait_ready(timeout=60)

        advanced = await values(MESSAGES_ADVANCED, expect=500, timeout=90)
        by_message: dict[str, set[str]] = {}
        copies: dict[str, set[bytes]] = {}
        for a in advanced:
            by_message.setdefault(a["messageId"], set()).add(a["id"])
            copies.setdefault(a["id"], set()).add(orjson.dumps(a, option=orjson.OPT_SORT_KEYS))
        # One published before the kill and again after it (its changelog not yet written) is the same record.
        assert all(len(c) == 1 for c in copies.values())
        assert len(by_message) == 500, f"{len(by_message)} of 500 DATA_ADVANCED\n{worker.log_tail()}"
        assert all(ids == {m + ":advanced"} for m, ids in by_message.items())
        expected = {(f["device"], f["seqNumber"]) for f in frames}
        assert {(a["device"], a["seqNumber"]) for a in advanced} == expected
        for a in advanced:
            heard = {f["station"] for f in frames if (f["device"], f["seqNumber"]) == (a["device"], a["seqNumber"])}
            assert {d["bsId"] for d in a["duplicates"]} == heard, (a["device"], a["seqNumber"])
        await _every_sink_has_each_aggregate_once(api.root, ids["deviceType"], {a["device"]: a for a in advanced},
                                                  receiver)


async def _every_sink_has_each_aggregate_once(client: Client, device_type: str, aggregates: dict[str, dict],
                                              receiver) -> None:
    """After the crash, the store and the API have each message with its aggregate's receptions, each
    device's radio fields, and one DATA_ADVANCED attempt per message; the receiver one request each."""
    await wait_until(lambda: len(receiver.requests) >= len(aggregates), 30, "a DATA_ADVANCED callback per message")

    async def attempts() -> list | None:
        rows = await fetch("SELECT delivery_id, status FROM callback_attempts")
        return rows if len(rows) >= len(aggregates) and all(r["status"] == 200 for r in rows) else None
    rows = await wait_until(attempts, 30, "every DATA_ADVANCED attempt recorded")
    assert sorted(r["delivery_id"] for r in rows) == sorted(f"{a['id']}/adv" for a in aggregates.values())
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == len(receiver.requests) == len(aggregates), \
        "an aggregate published twice is delivered once"

    async def stored() -> list | None:
        found = await api_list(client, f"/device-types/{device_type}/messages")
        return found if len(found) == len(aggregates) and all(m.get("nbFrames") for m in found) else None
    messages = await wait_until(stored, 30, "every message with its aggregate")
    for m in messages:
        a = aggregates[m["device"]["id"]]
        assert (m["seqNumber"], m["time"], m["data"], m["nbFrames"], m["lqi"]) == (
            a["seqNumber"], a["time"], a["data"], a["nbFrames"], a["linkQuality"])
        assert [(r["baseStation"]["id"], r["rssi"], r["snr"]) for r in m["rinfos"]] == \
            [(r["baseStation"], f"{r['rssi']:.2f}", f"{r['snr']:.2f}") for r in a["rinfos"]], \
            "every reception of the aggregate (radio values as decimal strings, as the live service writes them)"
        assert [(s["status"], s["cbDef"]) for s in m["rinfos"][0]["cbStatus"]] == [(200, "adv")]
    devices = {d["id"]: d for d in await api_list(client, "/devices/", deviceTypeId=device_type)}
    assert {d: (v["sequenceNumber"], v["lastCom"]) for d, v in devices.items()} == \
        {d: (a["seqNumber"], a["time"]) for d, a in aggregates.items()}


async def test_keep_alive_error_and_restored_exactly_once_across_restart(isolated, workers, receiver):
    network = Network(STATIONS, [Device("B00003", 43.6, 1.4)])
    error_cb = {"id": "err", "callback_type": 2, "callback_subtype": 6, "http_method": "GET",
                "url": receiver.url + "/err?d={device}"}
    async with running_api() as (api, root):
        await seed(network, keep_alive=4, callbacks=[error_cb], parent_group=root)
        sinks = workers("router,delivery,store", isolated)
        worker = workers("relay,ingest", isolated, BACKHAUL_ADVANCED_WINDOW_S="2")
        await worker.wait_ready()
        await sinks.wait_ready()
        await wait_views([worker, sinks], seeded_records(network, 1))
        await publish([frame("B00003", 1, "0A01", -100.0)])
        await values(MESSAGES, expect=1, timeout=10)
        await asyncio.sleep(1.0)
        worker.kill9()                                  # the deadline is pending when the worker dies
        worker = workers("relay,ingest", isolated, BACKHAUL_ADVANCED_WINDOW_S="2")
        await worker.wait_ready(timeout=60)
        events = await values(DEVICE_EVENTS, expect=1, timeout=20)
        assert [e["type"] for e in events] == ["ERROR"]
        assert events[0]["info"].startswith("No message received since ")

        heard_again = frame("B00003", 2, "0A02", -100.0)
        await publish([heard_again])
        events = await values(DEVICE_EVENTS, expect=2, timeout=15)
        assert [e["type"] for e in events] == ["ERROR", "RESTORED"]
        await asyncio.sleep(1.5)                         # let the batch commit
        worker.kill9()
        worker = workers("relay,ingest", isolated, BACKHAUL_ADVANCED_WINDOW_S="2")
        await worker.wait_ready(timeout=60)
        events = await values(DEVICE_EVENTS, expect=3, timeout=25)   # the next breach
        await asyncio.sleep(2.0)
        events = await values(DEVICE_EVENTS, expect=10, timeout=3)
        assert [e["type"] for e in events] == ["ERROR", "RESTORED", "ERROR"], worker.log_tail()
        assert len({e["id"] for e in events}) == 3

        # Every sink: each event stored once, the device's state, one ERROR callback per event.
        stored = await wait_until(lambda: _rows_when(3, "SELECT id FROM device_events ORDER BY time"), 15,
                                  "the three events stored")
        assert [r["id"] for r in stored] == [e["id"] for e in events]
        [status] = await fetch("SELECT sequence_number, last_com, com_state FROM device_status")
        assert tuple(status) == (2, heard_again["time"], 3), "in ERROR again, after message 2"
        device = check(await api.root.get("/devices/B00003"), 200)
        assert (device["sequenceNumber"], device["lastCom"]) == (2, heard_again["time"])
        attempts = await wait_until(lambda: _rows_when(3, "SELECT delivery_id, status FROM callback_attempts "
                                                          "ORDER BY time"), 20, "an ERROR callback per event")
        assert [(r["delivery_id"], r["status"]) for r in attempts] == [(f"{e['id']}/err", 200) for e in events]
        assert len(receiver.requests) == 3, "an event decided again after a crash is delivered once"
        messages = check(await api.root.get("/devices/B00003/messages"), 200)["data"]
        assert [m["seqNumber"] for m in messages] == [2, 1]


async def _rows_when(n: int, sql: str) -> list | None:
    rows = await fetch(sql)
    return rows if len(rows) >= n else None


async def _sleep_until(epoch_s: float) -> None:
    """The scenario's timeline: wait for a moment given in broker time (the same host's clock)."""
    await asyncio.sleep(max(0.0, epoch_s - time.time()))


async def test_a_late_copy_is_late_across_a_kill_9_as_live(isolated, workers):
    """Issue 10, point 3, with the issue's own numbers and the default 25 s window: station A at T,
    ingest killed (-9) at T+20 and started again at T+23.6, station B at T+28. The restarted worker
    reads B from its backlog (its partitions come back once the dead member's session is over),
    with the window, deadline T+25, still in the state it restored: B is late exactly as live
    (no duplicate reception, DATA_ADVANCED with A only, under the message's id)."""
    network = Network(STATIONS, [Device("B00004", 43.62, 1.45)])
    await seed(network)
    relay = workers("relay,store", isolated)                 # the store is not killed: it sees it all
    ingest = workers("ingest", isolated)
    await relay.wait_ready()
    await ingest.wait_ready()
    await wait_views([relay, ingest], seeded_records(network))

    await publish([frame("B00004", 7, "0A01", -100.0, ack=True)])  # a merged B would publish its reception
    [first] = await values(MESSAGES, expect=1, timeout=15)
    t = first["ingestedAt"] / 1000                  # T: the broker's append time of A
    await asyncio.sleep(1.0)                        # A's batch committed
    await _sleep_until(t + 20)
    ingest.kill9()
    await _sleep_until(t + 23.6)
    ingest = workers("ingest", isolated)
    await _sleep_until(t + 28)
    await publish([frame("B00004", 7, "0A02", -90.0, ack=True)])
    await ingest.wait_ready(timeout=60)

    advanced = await values(MESSAGES_ADVANCED, expect=1, timeout=40)
    frames = await values(FRAMES, expect=2, timeout=5)
    appended = [r.timestamp / 1000 for r in await read_topic(topic(FRAMES), expect=2, timeout=5)]
    assert [f["station"] for f in frames] == ["0A01", "0A02"] and appended[1] - appended[0] >= 25
    assert [(a["id"], a["nbStations"]) for a in advanced] == [(first["id"] + ":advanced", 1)], ingest.log_tail()
    assert [d["bsId"] for d in advanced[0]["duplicates"]] == ["0A01"]
    assert advanced[0]["deadline"] == first["ingestedAt"] + 25_000
    messages = await values(MESSAGES, expect=2, timeout=3)
    assert [(m["station"], m["duplicate"]) for m in messages] == [("0A01", False)]   # B: no duplicate
    assert "backhaul_late_frames_total 1.0" in await ingest.metrics()
    # The store: one message, the aggregate's one reception (A), B's copy nowhere.
    await wait_until(lambda: _rows_when(1, "SELECT 1 FROM messages WHERE lqi IS NOT NULL"), 15, "the aggregate stored")
    [row] = await fetch("SELECT id, rinfos, nb_frames FROM messages")
    assert row["id"] == first["id"] and row["nb_frames"] == 1
    assert [r["baseStation"] for r in orjson.loads(row["rinfos"])] == ["0A01"]
