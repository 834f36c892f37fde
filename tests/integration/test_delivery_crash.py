"""kill -9 of the delivery worker with 1,000 deliveries in flight: after a restart every
delivery reaches the receiver, and any repeat carries the same webhook-id. A retry waiting
in PostgreSQL survives the kill too. After the crash every sink is checked, not only the
receiver: the store's rows (messages, callback_attempts, undelivered_callbacks) and each
message's cbStatus through the API, which lists every request the receiver saw."""
from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import pytest
from aiohttp import web

from backhaul.kafka import make_admin
from backhaul.topics import topic
from simulator.network import simulate
from tests.api_support import ApiEnv, check, running_api
from tests.conftest import Pipeline, Received, at_least, frame, publish_frames, wait_until

pytestmark = pytest.mark.integration


async def test_kill_9_with_1000_deliveries_in_flight(pipeline, receiver, isolated, workers):
    async def slowly(request, rec):
        await asyncio.sleep(1.0)
        return web.Response(text="ok")

    receiver.behaviour = slowly
    env = {"BACKHAUL_ENDPOINT_CONCURRENCY": "100", "BACKHAUL_ENDPOINT_QUEUE": "1000", "BACKHAUL_RETRY_CLAIM_S": "3"}
    async with running_api() as (api, root):
        pipe = await pipeline([{"id": "cb", "url": receiver.url + "/in?device={device}&seq={seqNumber}",
                                "http_method": "GET", "signing_secret": "whsec_a2lsbC1uaW5lLXNlY3JldA=="}],
                              roles=("relay,ingest,router,store", "delivery"), env=env, stations=3, devices=200,
                              parent_group=root)
        await _crash_and_recover(pipe, receiver, isolated, workers, env)
        await _every_sink_lists_every_request(pipe, api, receiver.requests, messages=1000)


async def _crash_and_recover(pipe: Pipeline, receiver, isolated, workers, env: dict[str, str]) -> None:
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


async def _every_sink_lists_every_request(pipe: Pipeline, api: ApiEnv, requests: list[Received], *,
                                          messages: int) -> None:
    """The store has every message and every attempt (none left open, none undelivered), and each
    message's cbStatus lists every request the receiver saw for it (plus at most the one the crash
    announced but never sent), the cut-short ones as interrupted, the last one answered 200."""
    async def settled() -> bool:
        [row] = await pipe.fetch("SELECT count(*) FILTER (WHERE status IS NULL) AS open, "
                                 "count(DISTINCT delivery_id) FILTER (WHERE status = 200) AS ok FROM callback_attempts")
        return row["open"] == 0 and row["ok"] == messages
    await wait_until(settled, 30, "every attempt on the record, none left open")
    assert (await pipe.fetch("SELECT count(*) AS n FROM messages"))[0]["n"] == messages
    assert (await pipe.fetch("SELECT count(*) AS n FROM undelivered_callbacks"))[0]["n"] == 0
    seen = Counter((r.query["device"], r.query["seq"]) for r in requests)
    listed = 0
    for device in pipe.devices:
        for m in check(await api.root.get(f"/devices/{device}/messages"), 200)["data"]:
            statuses = m["rinfos"][0]["cbStatus"]
            requested = seen[(device, str(m["seqNumber"]))]
            assert requested <= len(statuses) <= requested + 1, (device, m["seqNumber"], requested, statuses)
            assert statuses[-1]["status"] == 200 and all(s["cbDef"] == "cb" for s in statuses)
            assert all(s["status"] == 200 or (s["status"] == 600 and "stopped during this request" in s["info"])
                       for s in statuses), statuses
            listed += 1
    assert listed == messages, "every message through the API"


async def test_a_waiting_retry_survives_kill_9(pipeline, receiver, isolated, workers):
    async def fail_once(request, rec):
        return web.Response(status=500 if len(receiver.requests) == 1 else 200)

    receiver.behaviour = fail_once
    env = {"BACKHAUL_RETRY_SCHEDULE_S": "4", "BACKHAUL_RETRY_JITTER": "0"}
    async with running_api() as (api, root):
        pipe = await pipeline([{"id": "cb", "url": receiver.url + "/in", "http_method": "GET"}],
                              roles=("relay,ingest,router,store", "delivery"), env=env, parent_group=root)
        await _retry_across_kill_9(pipe, receiver, isolated, workers, env)
        device = pipe.devices[0]
        [m] = check(await api.root.get(f"/devices/{device}/messages"), 200)["data"]
        assert [(s.get("status"), s["cbDef"]) for s in m["rinfos"][0]["cbStatus"]] == [(500, "cb"), (200, "cb")], \
            "both tries listed, no 'waiting' entry left"
        assert check(await api.root.get(f"/devices/{device}/callbacks-not-delivered"), 200)["data"] == []


async def _retry_across_kill_9(pipe: Pipeline, receiver, isolated, workers, env: dict[str, str]) -> None:
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
