"""The delivery worker alone (workers/delivery.py), in this process, on the real Kafka, PostgreSQL
and HTTP.

Its contract: it reads `deliveries` (as the router writes them), sends each one, and writes to
`delivery-results` an announcement (`state: sending`) before each request and its completion after,
with the same `sendId`; a Kafka offset is committed only once every delivery before it is settled
(a delivery still waiting for its endpoint holds its partition back, however many later ones have
finished); a copy of a delivery read again is not sent again; BATCH_URL deliveries of a callback
are gathered for `batch_window_s` and sent as one request, and the window closes on time even when
deliveries keep coming.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web

from backhaul import db
from backhaul import settings as settings_module
from schemas.deliveries import Delivery, delivery_key, encode_delivery, http_request, new_delivery
from schemas.delivery_results import DeliveryResult, decode_delivery_result
from schemas.messages import Message
from schemas.topics import DELIVERIES, DELIVERY_RESULTS
from tests.conftest import wait_until
from tests.stages.stage_records import message
from tests.stages.stage_support import (
    Configured,
    commits,
    configured,
    ends,
    publish,
    records_of,
    running,
    wait_all_committed,
)
from workers.delivery import DeliveryWorker
from workers.pace import Pace
from workers.retry_store import RetryStore

pytestmark = pytest.mark.integration

GROUP = "backhaul-delivery"
D1, D2 = "5E0001", "5E0002"


@pytest.fixture
async def pool(isolated) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(min_size=1, max_size=4)
    yield pool
    await pool.close()


def worker(conf: Configured, pool: asyncpg.Pool, monkeypatch, **env: str) -> DeliveryWorker:
    """A delivery worker on this test's settings (`env`: BACKHAUL_* settings)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings_module.settings.cache_clear()
    return DeliveryWorker(conf.view, RetryStore(pool, claim_s=5))


def routed(conf: Configured, m: Message, callback: str, *, url: str | None = None) -> Delivery:
    """The delivery the router writes for message `m` and `callback` (a URL one when `url` is given)."""
    d = new_delivery(m, callback_id=callback, kind="DATA_UPLINK", channel="URL" if url else "BATCH_URL",
                     device_type_id=conf.device_type, message_id=m["id"], origin_ms=m["time"],
                     created_ms=int(time.time() * 1000), variables={"device": m["device"], "seqNumber": m["seqNumber"]})
    if url:
        d["request"] = http_request("GET", url, {}, None, None)
    return d


def keyed(d: Delivery) -> tuple[bytes | None, bytes]:
    return delivery_key(d), encode_delivery(d)


def sends_of(found: list[DeliveryResult]) -> dict[str, list[DeliveryResult]]:
    """The results of each send (announcement, then completion), by send id."""
    by_send: dict[str, list[DeliveryResult]] = {}
    for r in found:
        by_send.setdefault(r["sendId"], []).append(r)
    return by_send


async def test_sent_announced_answered_and_committed_only_past_settled_deliveries(
        isolated, pool, make_receiver, monkeypatch):
    release = asyncio.Event()

    async def hang(request, rec):
        await release.wait()
        return web.Response(text="late")

    fast, slow = await make_receiver(), await make_receiver(hang)
    callbacks = [{"id": "fast", "url": fast.url + "/f"}, {"id": "slow", "url": slow.url + "/s"}]
    async with configured([D1], callbacks) as conf:
        m1, m2, m3 = (message(conf, D1, seq, time_ms=1_764_165_600_000 + seq) for seq in (1, 2, 3))
        held = routed(conf, m1, "slow", url=f"{slow.url}/s?seq=1")
        quick = [routed(conf, m, "fast", url=f"{fast.url}/f?seq={m['seqNumber']}") for m in (m2, m3)]
        [(partition, first), *_] = await publish(DELIVERIES, [keyed(held), *map(keyed, quick)])
        assert await commits(GROUP, DELIVERIES) == {}

        async with running(worker(conf, pool, monkeypatch, BACKHAUL_CALLBACK_TIMEOUT_S="20")):
            await wait_until(lambda: len(fast.requests) == 2 and len(slow.requests) == 1, 15, "the three requests")
            await wait_until(lambda: _completions(2), 10, "the two quick deliveries recorded")
            await asyncio.sleep(0.6)  # three turns of the worker's commit loop (every 0.2 s)
            assert (await commits(GROUP, DELIVERIES)).get(partition, 0) == first, \
                "the first delivery is still out: nothing past it is committed, though the two after it are done"
            release.set()
            await wait_all_committed(GROUP, [DELIVERIES])

        assert [r.query["seq"] for r in fast.requests] == ["2", "3"] and slow.requests[0].query["seq"] == "1"
        assert {r.headers["webhook-id"] for r in (*fast.requests, *slow.requests)} == \
            {held["id"], *(d["id"] for d in quick)}, "each request carries its delivery's id"
        by_send = sends_of(await records_of(DELIVERY_RESULTS, decode_delivery_result))
        assert len(by_send) == 3
        for d, answer in ((held, "late"), (quick[0], "ok"), (quick[1], "ok")):
            [(send, (announced, done))] = [(s, rs) for s, rs in by_send.items() if rs[0]["deliveryId"] == d["id"]]
            assert (announced["state"], announced["attempt"], announced["callbackId"], announced["messageId"],
                    announced["device"]) == ("sending", 1, d["callbackId"], d["messageId"], D1)
            assert {k: done[k] for k in ("state", "attempt", "status", "errorClass", "final", "dead", "answer")} == {
                "state": "done", "attempt": 1, "status": 200, "errorClass": "ok", "final": True, "dead": False,
                "answer": answer}
            assert done["sentAt"] == announced["sentAt"] <= done["time"], "announced before it was sent"
            assert done["registrationId"] == conf.registrations[D1] and done["deviceTypeId"] == conf.device_type


async def _completions(n: int) -> list[DeliveryResult] | None:
    done = [r for r in await records_of(DELIVERY_RESULTS, decode_delivery_result) if r["state"] == "done"]
    return done if len(done) >= n else None


async def test_a_copy_read_again_is_not_sent_again(isolated, pool, receiver, monkeypatch):
    """The same delivery published twice (a copy upstream), one copy right after the other and one
    after the first was settled: one request, one send on the record, every offset committed."""
    async with configured([D1], [{"id": "cb", "url": receiver.url + "/in"}]) as conf:
        d = routed(conf, message(conf, D1, 1), "cb", url=f"{receiver.url}/in?seq=1")
        other = routed(conf, message(conf, D1, 2), "cb", url=f"{receiver.url}/in?seq=2")
        async with running(worker(conf, pool, monkeypatch)):
            await publish(DELIVERIES, [keyed(d), keyed(d), keyed(other)])
            await wait_all_committed(GROUP, [DELIVERIES])
            await publish(DELIVERIES, [keyed(d)])
            await wait_all_committed(GROUP, [DELIVERIES])
        assert sorted(r.query["seq"] for r in receiver.requests) == ["1", "2"]
        by_send = sends_of(await records_of(DELIVERY_RESULTS, decode_delivery_result))
        assert Counter(rs[0]["deliveryId"] for rs in by_send.values()) == {d["id"]: 1, other["id"]: 1}
        assert all([r["state"] for r in rs] == ["sending", "done"] for rs in by_send.values())
        assert await commits(GROUP, DELIVERIES) == {p: e for p, e in (await ends(DELIVERIES)).items() if e}


async def test_a_batch_url_batch_is_sent_on_time_under_steady_traffic(isolated, pool, receiver, monkeypatch):
    """The issue's example: one BATCH_URL delivery every 0.2 s for 4 s. The 1 s window opened by the
    first one closes 1 s later although deliveries keep coming: batches go out while the traffic
    lasts, each with the lines of about one window, and every line is sent exactly once."""
    callback = {"id": "batch", "channel": "BATCH_URL", "url": receiver.url + "/batch", "http_method": "POST",
                "line_pattern": "{device};{seqNumber}"}
    async with configured([D1, D2], [callback]) as conf:
        messages = [message(conf, (D1, D2)[i % 2], i, time_ms=1_764_165_600_000 + i) for i in range(20)]
        async with running(worker(conf, pool, monkeypatch, BACKHAUL_BATCH_WINDOW_S="1")):
            started, started_at = time.monotonic(), time.time()
            for m in messages:
                await publish(DELIVERIES, [keyed(routed(conf, m, "batch"))])
                await asyncio.sleep(max(0.0, started + 0.2 * (m["seqNumber"] + 1) - time.monotonic()))
            steady_until = time.time()
            batches_during = [r for r in receiver.requests if r.at < steady_until]
            await wait_until(lambda: _lines(receiver) >= 20, 10, "every line")
            await wait_all_committed(GROUP, [DELIVERIES])
        assert len(batches_during) >= 2, \
            f"batches must go out while deliveries keep coming: {len(batches_during)} in {steady_until - started_at:.1f} s"
        first_sent = receiver.requests[0].at - started_at
        assert first_sent < 1.0 + 1.0, f"the first window closed {first_sent:.2f} s after it opened"
        lines = [line for r in receiver.requests for line in r.body.decode().split("\n")]
        assert sorted(lines) == sorted(f"{m['device']};{m['seqNumber']}" for m in messages), "each line once"
        assert all(len(r.body.decode().split("\n")) <= 8 for r in receiver.requests), "about one window each"
        by_send = sends_of(await records_of(DELIVERY_RESULTS, decode_delivery_result))
        assert len(by_send) == 20 and all([r["state"] for r in rs] == ["sending", "done"] for rs in by_send.values())


def _lines(receiver) -> int:
    return sum(len(r.body.decode().split("\n")) for r in receiver.requests)


async def test_which_endpoint_is_parked_past_its_share(isolated, pool, monkeypatch):
    """The parking rule (`_at_limit`) on measured paces: below its share, never; past it, only when its
    queue would take 5 s or more to drain (a fast endpoint keeps its deliveries in memory); once half
    the worker is taken, a slow endpoint (1 s or more a request) gets only its concurrency, however
    soon it would drain, so that slow endpoints together never fill the worker."""
    async with configured([D1]) as conf:
        w = worker(conf, pool, monkeypatch, BACKHAUL_ENDPOINT_QUEUE="100", BACKHAUL_ENDPOINT_CONCURRENCY="16",
                   BACKHAUL_ENDPOINT_RATE_PER_S="100000", BACKHAUL_DELIVERY_IN_FLIGHT="1000")
        fast, slow = w.registry.get("http://fast:80"), w.registry.get("http://slow:80")
        now = time.monotonic()
        for endpoint, latency_s in ((fast, 0.005), (slow, 1.5)):
            pace = w._pace[endpoint.key] = Pace()
            pace.busy(now - 1)
            pace.answered(now, latency_s)
            pace.latency_s = latency_s
        w._queued = {fast.key: 99, slow.key: 99}
        assert not w._at_limit(fast) and not w._at_limit(slow), "below the share"
        w._queued = {fast.key: 400, slow.key: 50}
        assert not w._at_limit(fast), "400 at 16 x 200 a second drain in 0.1 s"
        assert not w._at_limit(slow), "below its share while the worker is not half taken"
        w._queued[slow.key] = 100
        assert w._at_limit(slow), "100 at 16 every 1.5 s take 9 s"
        w._held = 500
        w._queued[slow.key] = 16
        assert w._at_limit(slow), "half the worker taken: a slow endpoint's share is its concurrency"
        assert not w._at_limit(fast)
        w._queued[fast.key] = 1000
        w._pace[fast.key].answered_at = w._pace[fast.key].busy_since = now - 2  # silent 2 s: at most 16 in 2 s
        assert w._at_limit(fast)
