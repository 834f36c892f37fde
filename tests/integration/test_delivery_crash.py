"""kill -9 of the delivery worker with 1,000 deliveries in flight: after a restart every
delivery reaches the receiver, and any repeat carries the same webhook-id."""
from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiohttp import web

from ingest.simulator import simulate
from tests.conftest import wait_until

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
