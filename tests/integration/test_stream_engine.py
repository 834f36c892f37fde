"""The stream engine on the real Kafka: dedup, late frames, replays, wrap, DATA_ADVANCED, crash safety."""
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
from tests.conftest import read_topic

pytestmark = pytest.mark.integration

STATIONS = [Station("0A01", 43.60, 1.40), Station("0A02", 43.60, 1.50), Station("0A03", 43.70, 1.45)]


async def seed(network: Network, **kw) -> None:
    conn = await db.connect()
    try:
        await seed_network(conn, network, name="engine", **kw)
    finally:
        await conn.close()


async def publish(frames: list[dict]) -> None:
    producer = make_producer()
    await producer.start()
    try:
        futures = [await producer.send(topic(FRAMES), orjson.dumps(f), key=f["device"].encode()) for f in frames]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def frame(device: str, seq: int, station: str, rssi: float, rep: int = 1, t: int | None = None) -> dict:
    return {"station": station, "device": device, "seqNumber": seq, "time": t or int(time.time() * 1000),
            "data": "c0ffee", "rssi": rssi, "snr": 12.5, "freq": 868_130_000, "rep": rep, "ack": False}


async def values(name: str, expect: int, timeout: float) -> list[dict]:
    return [orjson.loads(r.value) for r in await read_topic(topic(name), expect=expect, timeout=timeout)]


async def test_dedup_late_replay_wrap_and_advanced(isolated, workers):
    network = Network(STATIONS, [Device("B00001", 43.62, 1.45)])
    await seed(network)
    worker = workers("relay,ingest", isolated, BACKHAUL_ADVANCED_WINDOW_S="4")
    await worker.wait_ready()
    await asyncio.sleep(1.5)

    rssi = {"0A01": -100.0, "0A02": -110.0, "0A03": -120.0}
    copies = [frame("B00001", 4095, s, r, rep) for s, r in rssi.items() for rep in (1, 2)]
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
    await seed(Network(STATIONS, [Device("B00002", 43.6, 1.4)]))
    worker = workers("relay,ingest", isolated)
    await worker.wait_ready()
    await asyncio.sleep(1.5)
    await publish([frame("DEAD", 1, "0A01", -100.0)])
    rejected = await values("frames.rejected", expect=1, timeout=10)
    assert [r["reason"] for r in rejected] == ["unknown-device"]
    assert await values(MESSAGES, expect=1, timeout=2) == []


async def test_500_open_windows_survive_kill_9(isolated, workers):
    network = build_network(3, 500, seed=11)
    await seed(network)
    env = {"BACKHAUL_ADVANCED_WINDOW_S": "15"}
    worker = workers("relay,ingest", isolated, **env)
    await worker.wait_ready()
    await asyncio.sleep(1.5)
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


async def test_keep_alive_error_and_restored_exactly_once_across_restart(isolated, workers):
    network = Network(STATIONS, [Device("B00003", 43.6, 1.4)])
    await seed(network, keep_alive=4)
    worker = workers("relay,ingest", isolated, BACKHAUL_ADVANCED_WINDOW_S="2")
    await worker.wait_ready()
    await asyncio.sleep(1.5)
    await publish([frame("B00003", 1, "0A01", -100.0)])
    await values(MESSAGES, expect=1, timeout=10)
    await asyncio.sleep(1.0)
    worker.kill9()                                  # the deadline is pending when the worker dies
    worker = workers("relay,ingest", isolated, BACKHAUL_ADVANCED_WINDOW_S="2")
    await worker.wait_ready(timeout=60)
    events = await values(DEVICE_EVENTS, expect=1, timeout=20)
    assert [e["type"] for e in events] == ["ERROR"]
    assert events[0]["info"].startswith("No message received since ")

    await publish([frame("B00003", 2, "0A02", -100.0)])
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
    relay = workers("relay", isolated)
    ingest = workers("ingest", isolated)
    await relay.wait_ready()
    await ingest.wait_ready()
    await asyncio.sleep(1.5)                        # the view has the seeded network

    await publish([frame("B00004", 7, "0A01", -100.0)])
    [first] = await values(MESSAGES, expect=1, timeout=15)
    t = first["ingestedAt"] / 1000                  # T: the broker's append time of A
    await asyncio.sleep(1.0)                        # A's batch committed
    await _sleep_until(t + 20)
    ingest.kill9()
    await _sleep_until(t + 23.6)
    ingest = workers("ingest", isolated)
    await _sleep_until(t + 28)
    await publish([frame("B00004", 7, "0A02", -90.0)])
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
