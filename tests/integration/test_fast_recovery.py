"""Recovery without waiting for the session: static group membership and leaving on a graceful stop.

The session timeout is raised to 30 s here, so that a worker that had to wait
for it (a dynamic member joining after a kill -9, or partitions held by a
member that stopped without leaving) would be seen waiting; every bound below
is half of it or less. These tests assert the mechanism, not a timing figure
(`bench/recovery.py` measures the outage).
"""
from __future__ import annotations

import time

import aiohttp
import orjson
import pytest

from backhaul.kafka import make_admin
from backhaul.topics import topic
from schemas.topics import MESSAGES, MESSAGES_ADVANCED
from tests.conftest import frame, publish_frames, read_topic, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SESSION_MS = 30_000
ENV = {"BACKHAUL_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_MS)}
WELL_BEFORE_SESSION_S = SESSION_MS / 1000 / 2


async def instance_of(worker) -> str:
    async with aiohttp.ClientSession() as session:
        return (await worker.status(session))["instance"]


async def group_members(group: str) -> int:
    admin = make_admin()
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
        [described] = response.to_object()["groups"]
        return len(described["members"])
    finally:
        await admin.close()


def data_callbacks(receiver, seq: int) -> list:
    return [r for r in receiver.requests if r.query.get("seq") == str(seq)]


async def test_a_delivery_worker_killed_and_restarted_delivers_long_before_its_session_expires(
        pipeline, receiver, isolated, workers):
    pipe = await pipeline([{"id": "cb", "url": receiver.url + "/in?device={device}&seq={seqNumber}",
                            "http_method": "GET"}], roles=("relay,ingest,router,store", "delivery"), env=ENV)
    delivery = pipe.workers[1]
    device, station = pipe.devices[0], pipe.stations[0]
    await publish_frames([frame(device, 1, station=station)])
    await wait_until(lambda: data_callbacks(receiver, 1), 20, "the callback before the kill")
    instance = await instance_of(delivery)

    delivery.kill9()
    restarted = workers("delivery", isolated, **ENV)
    started = time.monotonic()
    await publish_frames([frame(device, 2, station=station)])
    await wait_until(lambda: data_callbacks(receiver, 2), WELL_BEFORE_SESSION_S,
                     f"the first callback after the restart\n{restarted.log_tail()}")
    took = time.monotonic() - started
    print(f"first callback {took:.2f} s after the restart (session timeout {SESSION_MS / 1000:.0f} s)")
    assert instance.endswith("-delivery-0")
    assert await instance_of(restarted) == instance, "the restarted worker came back with the same identity"


async def test_ingest_killed_and_restarted_takes_its_partitions_back_and_restores_its_state(isolated, workers):
    from backhaul import db
    from program.demo.seed import seed_network
    from simulator.network import build_network

    network = build_network(2, 1, seed=3)
    conn = await db.connect()
    try:
        await seed_network(conn, network, name="t")
    finally:
        await conn.close()
    env = {**ENV, "BACKHAUL_ADVANCED_WINDOW_S": "12"}
    ingest = workers("relay,ingest", isolated, **env)
    await ingest.wait_ready()
    device = network.devices[0].id
    a, b = (s.id for s in network.stations)
    # Asking for a downlink, so that the second station's reception is published (a duplicate reception).
    await publish_frames([frame(device, 7, station=a, rssi=-100.0, ack=True)])
    await read_topic(topic(MESSAGES), expect=1, timeout=20)

    ingest.kill9()  # the window of message 7 is open, and lives only in the changelog now
    ingest = workers("relay,ingest", isolated, **env)
    started = time.monotonic()
    await publish_frames([frame(device, 7, station=b, rssi=-110.0, ack=True)])
    # A kill -9 before ingest committed the first frame replays it: the same record, under the same id.
    first_of: dict[str, dict] = {}
    records: list = []
    deadline = started + WELL_BEFORE_SESSION_S
    while len(first_of) < 2 and time.monotonic() < deadline:
        records = await read_topic(topic(MESSAGES), expect=len(records) + 1, timeout=deadline - time.monotonic())
        for record in records:
            message = orjson.loads(record.value)
            first_of.setdefault(message["id"], message)
    took = time.monotonic() - started
    messages = list(first_of.values())
    assert len(messages) == 2, f"the second copy was not handled within {WELL_BEFORE_SESSION_S} s\n{ingest.log_tail()}"
    print(f"second copy handled {took:.2f} s after the restart")
    assert [(m["station"], m["duplicate"]) for m in messages] == [(a, False), (b, True)], \
        "the restarted worker knew message 7: its state was restored on assignment"
    [advanced] = [orjson.loads(r.value) for r in await read_topic(topic(MESSAGES_ADVANCED), expect=1, timeout=30)]
    assert {d["bsId"] for d in advanced["duplicates"]} == {a, b}


async def test_a_worker_stopped_gracefully_leaves_and_its_partitions_move_at_once(
        pipeline, receiver, isolated, workers):
    pipe = await pipeline([{"id": "cb", "url": receiver.url + "/in?device={device}&seq={seqNumber}",
                            "http_method": "GET"}],
                          roles=("relay,ingest,router,store", "delivery", "delivery"), env=ENV, devices=12)
    first, second = pipe.workers[1], pipe.workers[2]
    ids = sorted([await instance_of(first), await instance_of(second)])
    # Two workers of the same roles on one machine take two slots, so they never fence each other.
    assert ids[0].endswith("-delivery-0") and ids[1] == ids[0][:-1] + "1", ids
    group = topic("backhaul-delivery")
    await wait_until(lambda: _members_are(group, 2), 20, "both delivery workers in the group")

    stopped = time.monotonic()
    second.stop()
    await wait_until(lambda: _members_are(group, 1), WELL_BEFORE_SESSION_S / 2, "the stopped worker gone from the group")
    print(f"group down to one member {time.monotonic() - stopped:.2f} s after SIGTERM")

    await publish_frames([frame(d, 3, station=pipe.stations[0]) for d in pipe.devices])
    await wait_until(lambda: len(data_callbacks(receiver, 3)) >= len(pipe.devices), WELL_BEFORE_SESSION_S,
                     "a callback for every device (every partition) from the remaining worker")


async def _members_are(group: str, n: int) -> bool:
    return await group_members(group) == n
