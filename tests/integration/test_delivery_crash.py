"""kill -9 of the delivery worker with 1,000 deliveries in flight: after a restart every
delivery reaches the receiver, and any repeat carries the same webhook-id. A retry waiting
in PostgreSQL survives the kill too."""
from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiohttp import web

from backhaul.kafka import make_admin
from backhaul.topics import topic
from simulator.network import simulate
from tests.conftest import at_least, frame, publish_frames, wait_until

pytestmark = pytest.mark.integration


async def test_kill_9_with_1000_deliveries_in_flight(pipeline, receiver, isolated, workers):
    async def slowly(request, rec):
        await asyncio.sleep(1.0)
        return web.Response(text="ok")

    receiver.behaviour = slowly
    env = {"BACKHAUL_ENDPOINT_CONCURRENCY": "100", "BACKHAUL_ENDPOINT_QUEUE": "1000", "BACKHAUL_RETRY_CLAIM_S": "3"}
    pipe = await pipeline([{"id": "cb", "url": receiver.url + "/in?device={device}&seq={seqNumber}",
                            "http_method": "GET", "signing_secret": "whsec_a2lsbC1uaW5lLXNlY3JldA=="}],
                          roles=("relay,ingest,router,store", "delivery"), env=env, stations=3, devices=200)
    delivery = pipe.workers[1]
    sent = await simulate(pipe.network, messages_per_device=5, rate=0, duration=None, max_stations=3,
                          progress=False)
    assert sent["messages"] == 1000

    await wait_until(lambda: len(receiver.requests) >= 150, 30, "150 callbacks before the crash")
    in_flight = await delivery.metrics()
    delivery.kill9()
    before = len(receiver.requests)
    gauge = next(line for line in in_flight.splitlines() if line.startswith("backhaul_deliveries_in_flight "))
    print(f"killed with {before} callbacks received; {gauge}")
    assert float(gauge.split()[1]) >= 500, "the worker held hundreds of deliveries when it died"

    restarted = workers("delivery", isolated, **env)
    await restarted.wait_ready()

    def every_message() -> bool:
        return len({(r.query["device"], r.query["seq"]) for r in receiver.requests}) >= 1000
    await wait_until(every_message, 45, f"all 1000 callbacks\n{restarted.log_tail()}")

    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in receiver.requests:
        ids[(r.query["device"], r.query["seq"])].add(r.headers["webhook-id"])
    repeats = len(receiver.requests) - len(ids)
    print(f"after the restart: {len(ids)} messages delivered, {repeats} repeats")
    assert len(ids) == 1000
    assert all(len(v) == 1 for v in ids.values()), "a repeat carries the same webhook-id"
    assert len({next(iter(v)) for v in ids.values()}) == 1000


async def test_a_waiting_retry_survives_kill_9(pipeline, receiver, isolated, workers):
    async def fail_once(request, rec):
        return web.Response(status=500 if len(receiver.requests) == 1 else 200)

    receiver.behaviour = fail_once
    env = {"BACKHAUL_RETRY_SCHEDULE_S": "4", "BACKHAUL_RETRY_JITTER": "0"}
    pipe = await pipeline([{"id": "cb", "url": receiver.url + "/in", "http_method": "GET"}],
                          roles=("relay,ingest,router,store", "delivery"), env=env)
    await publish_frames([frame(pipe.devices[0], 1, station=pipe.stations[0])])
    await pipe.wait_rows("SELECT * FROM delivery_retries", 1)
    await wait_until(lambda: committed(topic("backhaul-delivery")), 5, "the delivery's offset committed")
    pipe.workers[1].kill9()
    workers("delivery", isolated, **env)
    first, second = await wait_until(lambda: at_least(receiver.requests, 2), 20, "the retry after the restart")
    assert len(receiver.requests) == 2
    assert second.at - first.at >= 3.8, "the retry kept its time"
    rows = await pipe.wait_rows("SELECT attempt, status FROM callback_attempts WHERE status IS NOT NULL "
                                "ORDER BY attempt", 2)
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, 500), (2, 200)]
    assert await pipe.wait_rows("SELECT count(*) AS n FROM delivery_retries WHERE true HAVING count(*) = 0", 1)


async def committed(group: str) -> int:
    """Offsets a consumer group has committed, summed over its partitions."""
    admin = make_admin()
    await admin.start()
    try:
        return sum(max(0, o.offset) for o in (await admin.list_consumer_group_offsets(group)).values())
    finally:
        await admin.close()
