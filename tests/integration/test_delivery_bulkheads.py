"""Bulkheads per endpoint on the real stack: concurrency cap, token bucket (per-callback
overrides), circuit breaker, and one endpoint answering after 30 s never slowing another."""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiohttp import web

from backhaul.kafka import Out, make_producer, send_all
from backhaul.topics import topic
from bench.step import parked
from schemas.topics import FRAMES
from tests.conftest import frame, publish_frames, wait_until

pytestmark = pytest.mark.integration


def callback(cb_id: str, url: str, **columns) -> dict:
    return {"id": cb_id, "url": url + "/cb?device={device}&seq={seqNumber}", "http_method": "GET", **columns}


class Concurrency:
    """A receiver behaviour that takes `seconds` per request and tracks how many run at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.now = 0
        self.peak = 0

    async def __call__(self, request, rec) -> web.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.now -= 1
        return web.Response(text="ok")


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u - t < window) for i, t in enumerate(times))


async def test_concurrency_cap_and_token_bucket_per_endpoint(pipeline, make_receiver):
    slow_default, slow_own = Concurrency(1.0), Concurrency(1.0)
    receivers = [await make_receiver(b) for b in (slow_default, slow_own, None, None)]
    pipe = await pipeline([
        callback("cap-default", receivers[0].url),
        callback("cap-2", receivers[1].url, concurrency=2),
        callback("rate-default", receivers[2].url),
        callback("rate-4", receivers[3].url, rate_per_s=4.0),
    ], devices=12, env={"BACKHAUL_ENDPOINT_CONCURRENCY": "4", "BACKHAUL_ENDPOINT_RATE_PER_S": "10",
                        "BACKHAUL_ENDPOINT_BURST": "1"})
    await publish_frames([frame(d, 1, station=pipe.stations[0]) for d in pipe.devices])
    for r in receivers:
        await wait_until(lambda r=r: len(r.requests) >= 12, 20, f"12 requests at {r.url}")
    assert (slow_default.peak, slow_own.peak) == (4, 2), "concurrency caps: 4 by default, 2 for the callback"
    spans = []
    for r, rate in ((receivers[2], 10), (receivers[3], 4)):
        times = [q.at for q in r.requests]
        spans.append(max(times) - min(times))
        assert spans[-1] >= 11 / rate * 0.9, f"12 requests at {rate}/s took {spans[-1]:.2f} s"
        assert max_in_window(times, 1.0) <= rate + 1
    assert spans[1] < 11 / 4 + 1.5, "the bucket paces, it does not stall"


async def test_circuit_breaker_opens_probes_and_closes(pipeline, make_receiver):
    healthy = False

    async def behave(request, rec):
        return web.Response(status=200 if healthy else 500)

    endpoint = await make_receiver(behave)
    pipe = await pipeline([callback("breaker", endpoint.url)], devices=6, env={
        "BACKHAUL_ENDPOINT_CONCURRENCY": "1", "BACKHAUL_BREAKER_FAILURES": "3", "BACKHAUL_BREAKER_OPEN_S": "2",
        "BACKHAUL_RETRY_SCHEDULE_S": "0.2,0.2,0.2,0.2,0.2", "BACKHAUL_RETRY_JITTER": "0"})
    await publish_frames([frame(d, 1, station=pipe.stations[0]) for d in pipe.devices])
    await wait_until(lambda: len(endpoint.requests) >= 3, 15, "three failures")
    await wait_until(lambda: _has(pipe.worker, 'backhaul_circuits{state="open"} 1.0'), 5, "the open circuit")
    opened = time.time()
    assert len(endpoint.requests) == 3, "nothing is sent while the circuit is open"
    healthy = True
    await wait_until(lambda: len(endpoint.requests) >= 4, 10, "the half-open probe")
    probe = endpoint.requests[3]
    assert probe.at - opened >= 1.5, "the circuit stayed open for its 2 s"
    await wait_until(lambda: len({r.query["device"] for r in endpoint.requests if r.at >= probe.at}) == 6, 15,
                     "every delivery after the circuit closed")
    await wait_until(lambda: _has(pipe.worker, 'backhaul_circuits{state="closed"} 1.0'), 5, "the closed circuit")
    rows = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE error_class = 'ok'", 6)
    attempts = await pipe.fetch("SELECT delivery_id, max(attempt) AS n FROM callback_attempts GROUP BY delivery_id")
    assert len(rows) == 6 and max(r["n"] for r in attempts) <= 2, "parking while open is not an attempt"
    assert await pipe.fetch("SELECT 1 FROM undelivered_callbacks") == []


async def _has(worker, line: str) -> bool:
    return line in await worker.metrics()


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def paced(pipe, rate: float, seconds: float, seq: int) -> dict[tuple[str, str], float]:
    """Publish one frame per message at `rate` messages/s; (device, seq) -> publish time."""
    producer = make_producer()
    await producer.start()
    sent: dict[tuple[str, str], float] = {}
    started = time.monotonic()
    try:
        n = 0
        while time.monotonic() - started < seconds:
            device = pipe.devices[n % len(pipe.devices)]
            s = seq + n // len(pipe.devices)
            f = frame(device, s, station=pipe.stations[0])
            sent[(device, str(s))] = f["time"] / 1000
            await send_all(producer, [Out(topic(FRAMES), device.encode(), orjson.dumps(f))])
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
    finally:
        await producer.stop()
    return sent


async def test_an_endpoint_answering_after_30_s_does_not_slow_a_healthy_one(pipeline, make_receiver):
    """40 messages/s for 12 s to two endpoints, first both healthy, then one answering after 30 s
    (past the 10 s timeout): the healthy one's latency from frame to callback stays put. The
    delivery worker runs in its own process, as deployed; a warm-up round is not counted."""
    release = asyncio.Event()
    slow = False

    async def other(request, rec):
        if slow:
            try:
                await asyncio.wait_for(release.wait(), 30)
            except asyncio.TimeoutError:
                pass
        return web.Response(text="ok")

    healthy = await make_receiver()
    second = await make_receiver(other)
    pipe = await pipeline([callback("healthy", healthy.url), callback("slow", second.url)], devices=40,
                          roles=("relay,ingest,router,store", "delivery"))
    try:
        figures = {}
        for phase, seq in (("warm-up", 10), ("without", 100), ("with", 1000)):
            slow = phase == "with"
            sent = await paced(pipe, rate=40, seconds=2 if phase == "warm-up" else 12, seq=seq)
            await wait_until(lambda sent=sent: len([r for r in healthy.requests
                                                    if (r.query["device"], r.query["seq"]) in sent]) >= len(sent),
                             15, f"every healthy callback {phase} the slow endpoint")
            latencies = [r.at - sent[(r.query["device"], r.query["seq"])] for r in healthy.requests
                         if (r.query["device"], r.query["seq"]) in sent]
            figures[phase] = (len(latencies), percentile(latencies, 50), percentile(latencies, 99))
        waiting = sum(1 for r in second.requests if int(r.query["seq"]) >= 1000)
        timeouts = await pipe.fetch("SELECT count(*) AS n FROM callback_attempts WHERE error_class = 'timeout'")
        del figures["warm-up"]
        for phase, (n, p50, p99) in figures.items():
            print(f"healthy endpoint {phase} the 30 s endpoint: {n} callbacks, "
                  f"first frame -> callback p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
        print(f"slow endpoint: {waiting} requests hanging or timed out, {timeouts[0]['n']} timeouts recorded")
        assert waiting >= 16, "the slow endpoint really held requests"
        assert figures["with"][2] < 1.0, f"healthy p99 with a 30 s endpoint: {figures['with'][2]:.3f} s"
    finally:
        release.set()


async def test_past_its_share_an_endpoint_that_drains_quickly_is_not_parked(pipeline, make_receiver):
    """Share 4, concurrency 8, 100 deliveries at once to each of two endpoints, both answered once
    before: the one answering in 5 ms keeps them in memory (parking costs more than sending: an
    overloaded worker that parked for a fast endpoint collapsed), the one answering in 3 s (100 / 8 x
    3 s to drain) has them parked in the retry store, 'rate limited', and counted in
    `backhaul_deliveries_parked`. Before this rule every delivery past the share of 4 was parked."""
    fast, slow = Concurrency(0.005), Concurrency(3.0)
    fast_receiver, slow_receiver = await make_receiver(fast), await make_receiver(slow)
    pipe = await pipeline([callback("fast", fast_receiver.url), callback("slow", slow_receiver.url)],
                          devices=100, env={"BACKHAUL_ENDPOINT_QUEUE": "4", "BACKHAUL_ENDPOINT_CONCURRENCY": "8",
                                            "BACKHAUL_ENDPOINT_RATE_PER_S": "1000",
                                            "BACKHAUL_ENDPOINT_BURST": "1000"})
    first = pipe.devices[0]
    await publish_frames([frame(first, 1, station=pipe.stations[0])])
    for r in (fast_receiver, slow_receiver):
        await wait_until(lambda r=r: r.requests, 20, f"the warm-up request at {r.url}")

    parked_peak = {"fast": 0, "slow": 0}
    watching = True

    async def watch_parked() -> None:
        while watching:
            for row in await pipe.fetch("SELECT callback_id, count(*) AS n FROM delivery_retries "
                                        "WHERE reason = 'rate limited' GROUP BY callback_id"):
                parked_peak[row["callback_id"]] = max(parked_peak[row["callback_id"]], row["n"])
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_parked())
    try:
        started = time.monotonic()
        await publish_frames([frame(d, 2, station=pipe.stations[0]) for d in pipe.devices])
        await wait_until(lambda: len(fast_receiver.requests) >= 101, 60, "100 fast callbacks")
        fast_s = time.monotonic() - started
        await wait_until(lambda: parked_peak["slow"] >= 50, 30, "the slow endpoint's deliveries parked")
    finally:
        watching = False
        await watcher
    parked_total = (await parked([pipe.worker])).get("rate limited", 0.0)
    print(f"fast endpoint: 100 callbacks in {fast_s:.1f} s, at most {parked_peak['fast']} parked; "
          f"slow endpoint: at most {parked_peak['slow']} parked; backhaul_deliveries_parked {parked_total:g}")
    assert parked_peak["fast"] < 10, f"{parked_peak['fast']} of the fast endpoint's deliveries parked"
    assert parked_total >= parked_peak["slow"] + parked_peak["fast"]
