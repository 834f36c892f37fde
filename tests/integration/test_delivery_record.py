"""Every send on the record (issue 10, point 4), on the real stack.

The store turns announced and completed sends into one `callback_attempts` row each, numbered in
the order they were announced, closing a send cut short by a crash as interrupted; a kill -9 of the
delivery worker in the middle of requests leaves every request the receiver saw in `cbStatus`, the
repeat as an attempt of its own with the same webhook-id. The callback answer time is raised to 60 s
here so that the requests are still hanging when the worker is killed."""
from __future__ import annotations

import asyncio
from collections import defaultdict

import orjson
import pytest
from aiohttp import web

from backhaul import db
from backhaul.kafka import Out, make_producer, send_all
from backhaul.topics import topic
from program.demo.seed import seed_network
from schemas import delivery_results as results
from schemas.topics import DELIVERY_RESULTS
from simulator.network import build_network
from tests.api_support import check, running_api
from tests.conftest import frame, publish_frames, wait_until

pytestmark = pytest.mark.integration

DELIVERY = {"id": "m1/cb", "callbackId": "cb", "messageId": "m1", "device": "00AB", "deviceTypeId": None,
            "groupId": None, "registrationId": None, "kind": "DATA", "channel": "URL"}


def done(of: dict, send_id: str | None, attempt: int, status: int, error_class: str, at: int, **more) -> dict:
    """A completed send of delivery `of`, sent at `at` ms (`more`: further fields, e.g. dead)."""
    record = {**results.about(of), "attempt": attempt, "state": results.DONE, "sentAt": at, "time": at + 5,
              "status": status, "errorClass": error_class, "info": None if status == 200 else f"HTTP {status}",
              "latencyMs": 5.0, "answer": "", "final": True, "dead": False, **more}
    if send_id:
        record["sendId"] = send_id
    return record


async def publish_results(records: list[dict]) -> None:
    producer = make_producer()
    await producer.start()
    try:
        await send_all(producer, [Out(topic(DELIVERY_RESULTS), r["device"].encode(), orjson.dumps(r))
                                  for r in records])
    finally:
        await producer.stop()


@pytest.fixture
async def store_only(isolated, workers):
    """A store worker alone, with one callback `cb` in the database; returns a row reader."""
    conn = await db.connect()
    try:
        await seed_network(conn, build_network(1, 1, seed=3), name="rec",
                           callbacks=[{"id": "cb", "url": "http://127.0.0.1:9/in", "http_method": "GET"}])
    finally:
        await conn.close()
    await workers("store", isolated).wait_ready()

    async def fetch(sql: str, *args) -> list:
        conn = await db.connect()
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()
    return fetch


async def test_the_store_numbers_sends_and_closes_the_ones_a_crash_cut_short(store_only):
    async def rows(where: str = "true") -> list:
        return await store_only(f"SELECT * FROM callback_attempts WHERE {where} ORDER BY delivery_id, attempt")

    async def wait_rows(where: str, n: int) -> list:
        return await wait_until(lambda: _enough(rows(where), n), 15, f"{n} rows where {where}")

    d2 = {**DELIVERY, "id": "m2/cb", "messageId": "m2"}
    d3 = {**DELIVERY, "id": "m3/cb", "messageId": "m3"}
    # 1st send of m1 announced, then answered 500 (a retry follows), in two store batches.
    await publish_results([results.sending(DELIVERY, "s1", 1, 1000)])
    open_row = (await wait_rows("send_id = 's1'", 1))[0]
    assert (open_row["attempt"], open_row["status"], open_row["info"]) == (1, None, results.SENDING_INFO)
    await publish_results([done(DELIVERY, "s1", 1, 500, "http_5xx", 1000, final=False),
                           results.sending(DELIVERY, "s2", 2, 2000)])
    await wait_rows("send_id = 's2'", 1)
    # The worker died during the 2nd send; after the restart the same try is sent again and answered.
    # m2: a result from before send ids. m3: a request still out.
    again = [results.sending(DELIVERY, "s3", 2, 3000), done(DELIVERY, "s3", 2, 200, "ok", 3000),
             done(d2, None, 1, 200, "ok", 1500), results.sending(d3, "s4", 1, 4000)]
    await publish_results(again)
    await wait_rows("status IS NOT NULL", 4)

    def table(found: list) -> list:
        return [(r["delivery_id"], r["attempt"], r["send_id"], r["status"], r["error_class"]) for r in found]

    expected = [
        ("m1/cb", 1, "s1", 500, "http_5xx"),
        ("m1/cb", 2, "s2", 600, "interrupted"),
        ("m1/cb", 3, "s3", 200, "ok"),
        ("m2/cb", 1, "m2/cb#1", 200, "ok"),
        ("m3/cb", 1, "s4", None, None),
    ]
    assert table(await rows()) == expected
    interrupted = (await rows("send_id = 's2'"))[0]
    assert "stopped during this request" in interrupted["info"] and interrupted["time"] == 2000
    assert (await rows("send_id = 's3'"))[0]["time"] == 3000, "a row's time is when the request was sent"

    # The store replays a batch after a crash of its own: nothing is written twice.
    await publish_results(again)
    await publish_results([results.sending(d3, "s5", 1, 5000)])  # a marker: written after the replay
    await wait_rows("send_id = 's5'", 1)
    assert table(await rows("send_id <> 's5'")) == [
        *expected[:4], ("m3/cb", 1, "s4", 600, "interrupted")], "s5 closed s4, the replay changed nothing"


async def test_dead_follows_its_rule_and_undelivered_records_carry_the_message_time(store_only):
    async def dead() -> bool:
        return (await store_only("SELECT dead FROM callbacks WHERE id = 'cb'"))[0]["dead"]

    async def settled(marker: str) -> None:
        await wait_until(lambda: _enough(store_only("SELECT 1 FROM callback_attempts WHERE send_id = $1",
                                                    marker), 1), 15, f"the store to write {marker}")

    def delivery(n: int, created: int) -> dict:
        return {**DELIVERY, "id": f"m{n}/cb", "messageId": f"m{n}", "createdAt": created, "origin": created - 400,
                "messageTime": created - 500, "variables": {"device": "00AB"}, "request": {"url": "http://x/"}}

    def given_up(n: int, created: int, at: int) -> dict:
        d = delivery(n, created)
        return done(d, f"s{n}", 4, 500, "http_5xx", at, dead=True, delivery=d)

    # A delivery succeeded at 10 s; one that started before it is given up at 12 s: the callback
    # worked meanwhile, it is not dead.
    await publish_results([done(delivery(4, 9_000), "s4", 1, 200, "ok", 10_000), given_up(5, 8_000, 12_000)])
    await settled("s5")
    assert not await dead()
    undelivered = await store_only("SELECT time, message_id FROM undelivered_callbacks")
    assert [(r["message_id"], r["time"]) for r in undelivered] == [("m5", 7_500)], "the message's time"
    # Given up, started after the last success: every delivery has failed for a whole schedule.
    await publish_results([given_up(6, 11_000, 19_000)])
    await settled("s6")
    assert await dead()
    # One success clears it.
    await publish_results([done(delivery(7, 20_000), "s7", 1, 200, "ok", 20_100)])
    await settled("s7")
    assert not await dead()
    health = await store_only("SELECT last_success_at FROM callback_health WHERE callback_id = 'cb'")
    assert health[0]["last_success_at"] == 20_105


async def _enough(rows_coro, n: int):
    found = await rows_coro
    return found if len(found) >= n else None


async def test_a_request_cut_short_by_kill_9_is_its_own_attempt_with_the_same_webhook_id(
        pipeline, receiver, isolated, workers):
    release = asyncio.Event()
    first_seen: set[str] = set()

    async def hang_the_first_time(request, rec):
        webhook_id = rec.headers["webhook-id"]
        if webhook_id not in first_seen:
            first_seen.add(webhook_id)
            await release.wait()  # the worker is killed meanwhile
        return web.Response(text="ok")

    receiver.behaviour = hang_the_first_time
    env = {"BACKHAUL_CALLBACK_TIMEOUT_S": "60"}
    async with running_api() as (api, root):
        pipe = await pipeline([{"id": "cb", "url": receiver.url + "/in?device={device}&seq={seqNumber}",
                                "http_method": "GET"}],
                              roles=("relay,ingest,router,store", "delivery"), env=env, devices=8,
                              parent_group=root)
        await publish_frames([frame(d, 1, station=pipe.stations[0]) for d in pipe.devices])
        await wait_until(lambda: len(receiver.requests) >= 8, 20, "8 requests hanging")
        await pipe.wait_rows("SELECT 1 FROM callback_attempts WHERE status IS NULL", 8)
        device = pipe.devices[0]
        during = check(await api.root.get(f"/devices/{device}/messages"), 200)["data"][0]["rinfos"][0]["cbStatus"]
        assert [{k: v for k, v in s.items() if k != "time"} for s in during] == [
            {"info": "sending: no answer yet", "cbDef": "cb"}], "a request in flight is listed, without status"

        pipe.workers[1].kill9()
        release.set()
        restarted = workers("delivery", isolated, **env)
        await restarted.wait_ready()
        await wait_until(lambda: len(receiver.requests) >= 16, 60, f"the 8 requests sent again\n"
                                                                   f"{restarted.log_tail()}")
        rows = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE status IS NOT NULL "
                                    "ORDER BY delivery_id, attempt", 16)

        by_message: dict[tuple[str, str], list] = defaultdict(list)
        for r in receiver.requests:
            by_message[(r.query["device"], r.query["seq"])].append(r)
        assert len(receiver.requests) == 16 and all(len(v) == 2 for v in by_message.values())
        assert all(len({r.headers["webhook-id"] for r in v}) == 1 for v in by_message.values()), \
            "a repeat carries the same webhook-id"
        per_delivery: dict[str, list] = defaultdict(list)
        for r in rows:
            per_delivery[r["delivery_id"]].append(r)
        assert len(per_delivery) == 8
        for found in per_delivery.values():
            assert [(r["attempt"], r["status"], r["error_class"]) for r in found] == [
                (1, 600, "interrupted"), (2, 200, "ok")]
            sent = by_message[(found[0]["device_id"], "1")]
            assert found[0]["time"] <= sent[0].at * 1000 + 50 and found[1]["time"] <= sent[1].at * 1000 + 50, \
                "each send was on the record before the receiver had it"

        for device in pipe.devices:
            message = check(await api.root.get(f"/devices/{device}/messages"), 200)["data"][0]
            statuses = message["rinfos"][0]["cbStatus"]
            assert [s["status"] for s in statuses] == [600, 200]
            assert "stopped during this request" in statuses[0]["info"]
            assert len(statuses) == len(by_message[(device, str(message["seqNumber"]))]), \
                "every request the receiver saw is listed in cbStatus"
