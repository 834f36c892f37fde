"""Chaos on the real stack (issue 10): workers killed, Kafka and PostgreSQL stopped, an endpoint failing.

Each test runs traffic from three stations through the supervised workers to a
real receiver, does its harm, and ends with the checks of
`tests.chaos.harness.check_outcome`. Every test is bounded in time (pytest's
timeout, and each wait has its own bound). `BACKHAUL_CHAOS_SCALE` (default 1)
scales the durations down for a quick look at the harness, never in CI.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.chaos.harness import (
    ADVANCED_CALLBACK,
    DATA_CALLBACK,
    ROLES,
    Traffic,
    callbacks,
    cb_statuses,
    check_outcome,
    delays_around,
    percentiles,
    stack_script,
    wait_delivered,
)
from tests.conftest import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SCALE = float(os.environ.get("BACKHAUL_CHAOS_SCALE", "1"))


def seconds(s: float) -> float:
    return s * SCALE


REPORTS = Path(__file__).resolve().parents[2] / ".local" / "chaos-reports.jsonl"


def report(name: str, figures: dict) -> None:
    """The figures of a run, on one line (pytest shows it with -s, and in the log of a failure); also
    appended to .local/chaos-reports.jsonl so a CI run's figures can be read after it."""
    print(f"\nchaos {name}: {json.dumps(figures, sort_keys=True)}")
    REPORTS.parent.mkdir(exist_ok=True)
    with REPORTS.open("a") as out:
        out.write(json.dumps({"test": name, "at": time.time(), **figures}, sort_keys=True) + "\n")


async def metric(stack, name: str, metric_name: str, **labels: str) -> float:
    from tests.integration.test_infrastructure_faults import metric_sum
    return metric_sum(await stack.supervised.metrics(name), metric_name, **labels)


@pytest.mark.timeout(660)
async def test_a_a_random_worker_killed_every_15_to_30_s_for_5_minutes(chaos, receiver):
    stack = await chaos(callbacks(receiver.url))
    rng = random.Random(int(os.environ.get("BACKHAUL_CHAOS_SEED", "20261203")))
    traffic = Traffic(stack.devices, stack.stations, per_s=6).start()
    kills: list[tuple[float, str]] = []
    end = time.monotonic() + seconds(300)
    try:
        while True:
            pause = rng.uniform(seconds(15), seconds(30))
            if time.monotonic() + pause > end:
                await asyncio.sleep(max(0.0, end - time.monotonic()))
                break
            await asyncio.sleep(pause)
            running = [n for n in ROLES if stack.supervised.pid(n)]
            name = rng.choice(running)
            stack.supervised.kill9(name)
            kills.append((time.time(), name))
    finally:
        sent = await traffic.stop()
    await wait_delivered(receiver, sent, 120, fetch=stack.fetch)
    figures = await check_outcome(receiver, sent, stack.api, stack.fetch)

    view = stack.supervised.view()
    assert sum(p["restarts"] for p in view.values()) == len(kills), view
    assert all(p["state"] == "running" for p in view.values()), view
    for name in ROLES:
        assert view[name]["restarts"] == sum(1 for _, n in kills if n == name)
    assert not await stack.fetch("SELECT 1 FROM undelivered_callbacks"), "a healthy endpoint: nothing undelivered"
    figures["kills"] = [n for _, n in kills]
    figures["delayMs"] = delays_around(kills, sent, receiver)
    report("kill -9", figures)
    assert len(kills) >= int(seconds(300) / seconds(30)), kills


async def outage(stack, receiver, script: str, dependency: str, users: tuple[str, ...], stopped_s: float):
    """Traffic for 10 s, `script` stopped for `stopped_s`, started again, 20 s more traffic; every message
    delivered and the end checks passed. Returns the figures, with each worker's waits counted."""
    traffic = Traffic(stack.devices, stack.stations, per_s=6).start()
    try:
        await asyncio.sleep(seconds(10))
        await asyncio.to_thread(stack_script, script, "stop", stack.stack_env)
        stopped = time.time()
        await asyncio.sleep(seconds(10))
        during = {name: await metric(stack, name, "backhaul_infrastructure_up", dependency=dependency)
                  for name in users}
        await asyncio.sleep(max(0.0, stopped + seconds(stopped_s) - time.time()))
        await asyncio.to_thread(stack_script, script, "start", stack.stack_env)
        await asyncio.sleep(seconds(20))
    finally:
        sent = await traffic.stop()
    await wait_delivered(receiver, sent, 150, fetch=stack.fetch)
    await wait_until(lambda: _api_answers(stack), 30, "the API reading PostgreSQL again")
    figures = await check_outcome(receiver, sent, stack.api, stack.fetch)
    assert during == {name: 0.0 for name in users}, f"every worker using {dependency} shows it away: {during}"
    waits = {}
    for name in users:
        assert await metric(stack, name, "backhaul_infrastructure_up", dependency=dependency) == 1.0
        waits[name] = await metric(stack, name, "backhaul_infrastructure_errors_total", dependency=dependency)
    assert not await stack.fetch("SELECT 1 FROM undelivered_callbacks"), "the endpoint was well: none undelivered"
    figures["waitsCounted"] = waits
    figures["restarts"] = {n: p["restarts"] for n, p in stack.supervised.view().items()}
    return sent, figures


@pytest.mark.timeout(420)
async def test_b_kafka_stopped_and_started_again_mid_traffic(chaos, receiver):
    stack = await chaos(callbacks(receiver.url))
    # The outage shows in every worker's backhaul_infrastructure_up (checked in `outage`). Counted waits are
    # reported, not asserted: a worker that had nothing to publish while Kafka was away only waited in its fetch.
    _, figures = await outage(stack, receiver, "kafka.sh", "kafka", tuple(ROLES), stopped_s=20)
    report("kafka stopped", figures)


@pytest.mark.timeout(420)
async def test_c_postgresql_stopped_and_started_again_mid_traffic(chaos, receiver):
    stack = await chaos(callbacks(receiver.url))
    sent, figures = await outage(stack, receiver, "postgres.sh", "postgresql", ("delivery", "store"), stopped_s=30)
    assert all(n > 0 for n in figures["waitsCounted"].values()), figures
    stored = await stack.fetch("SELECT device_id, seq_number FROM messages WHERE id NOT LIKE '%:%'")
    assert {(r["device_id"], r["seq_number"]) for r in stored} == set(sent), "every message stored once"
    assert len(stored) == len(sent)
    report("postgresql stopped", figures)


async def _api_answers(stack) -> bool:
    return (await stack.api.root.get(f"/devices/{stack.devices[0]}")).status == 200


# (d) ----------------------------------------------------------------------------------------------
RATE_PER_S = 50          # the failing endpoint's own rate limit (burst: 100, from the default ratio)
DOOMED_SCHEDULE = [5.0, 10.0, 20.0]   # a callback that never succeeds, with a short schedule


class Phases:
    """The customer's endpoint: 500 for 2 minutes, then hanging 12 s per request, then healthy.
    Keeps the answer given to each request."""

    def __init__(self, failing_s: float, hanging_s: float) -> None:
        self.started = time.time()
        self.failing_s, self.hanging_s = failing_s, hanging_s
        self.answered: dict[int, int] = {}   # id(Received) -> status (0: hung up on by the caller)

    def phase(self, at: float) -> str:
        t = at - self.started
        return "failing" if t < self.failing_s else "hanging" if t < self.failing_s + self.hanging_s else "healthy"

    async def __call__(self, request, rec) -> web.Response:
        phase = self.phase(rec.at)
        if phase == "failing":
            self.answered[id(rec)] = 500
            return web.Response(status=500, text="down")
        if phase == "hanging":
            # The caller gives up after its 10 s timeout. Should it still be listening (a busy machine
            # runs its timers late), the answer is a failure too: a hung request is never a delivery.
            self.answered[id(rec)] = 0
            await asyncio.sleep(12)
            return web.Response(status=504, text="too late")
        self.answered[id(rec)] = 200
        return web.Response(text="ok")


@pytest.mark.timeout(540)
async def test_d_an_endpoint_failing_2_minutes_then_hanging_then_healthy(chaos, receiver, second_receiver):
    doomed_receiver = second_receiver
    doomed_receiver.behaviour = _always_500
    phases = Phases(seconds(120), seconds(30))
    receiver.behaviour = phases
    doomed = {"id": "chaos-doomed", "url": f"{doomed_receiver.url}/doomed?seq={{seqNumber}}", "http_method": "GET",
              "retry_schedule": DOOMED_SCHEDULE}
    stack = await chaos([*callbacks(receiver.url, rate_per_s=RATE_PER_S), doomed], devices=8,
                        BACKHAUL_LOG_LEVEL=os.environ.get("BACKHAUL_CHAOS_LOG_LEVEL", "INFO"))
    phases.started = time.time()
    traffic = Traffic(stack.devices, stack.stations, per_s=3).start()
    undelivered_seen: dict[str, float] = {}
    watcher = asyncio.create_task(_watch_undelivered(stack, undelivered_seen))
    try:
        # The first failure is on the record at once.
        first = await wait_until(lambda: next((r for r in receiver.requests if phases.answered.get(id(r)) == 500),
                                              None), 30, "the endpoint's first 500")
        rows = await wait_until(lambda: stack.fetch(
            "SELECT time FROM callback_attempts WHERE callback_id = $1 AND status = 500", DATA_CALLBACK), 5,
            "the first failed attempt on the record")
        on_record_s = time.time() - first.at
        # While the circuit is open, held messages say so in cbStatus.
        await asyncio.sleep(seconds(45))
        waiting = await cb_statuses(stack.api, stack.devices[:2])
        held = [s["info"] for found in waiting.values() for s in found
                if "status" not in s and s.get("cbDef") == DATA_CALLBACK]
        assert any("circuit open" in info for info in held), f"no held message says why: {held[:5]}"
        await asyncio.sleep(max(0.0, phases.started + seconds(170) - time.time()))
    finally:
        sent = await traffic.stop()

    def delivered() -> set:
        return {(r.query["device"], int(r.query["seq"])) for r in receiver.requests
                if r.path == "/data" and phases.answered.get(id(r)) == 200}
    await wait_delivered(receiver, sent, 180, delivered, stack.fetch, lambda r: phases.answered.get(id(r)))
    await wait_until(lambda: len(undelivered_seen) >= len(sent), 120, "every doomed delivery given up")
    watcher.cancel()
    figures = await check_outcome(receiver, sent, stack.api, stack.fetch,
                                  succeeded=lambda r: phases.answered.get(id(r)) == 200)

    # Nothing of the endpoint that came back is undelivered; the doomed one's are, each when its schedule ran out.
    undelivered = await stack.fetch("SELECT u.delivery_id, u.callback_id, u.time, u.message_id, u.delivery, m.time "
                                    "AS message_time FROM undelivered_callbacks u JOIN messages m "
                                    "ON m.id = u.message_id")
    assert {r["callback_id"] for r in undelivered} == {"chaos-doomed"}
    assert len(undelivered) == len(sent)
    give_up_after = sum(DOOMED_SCHEDULE) + (len(DOOMED_SCHEDULE) + 1) * 10.0
    late = []
    for r in undelivered:
        assert r["time"] == r["message_time"], "an undelivered record carries its message's time"
        deadline = _created_s(r) + give_up_after
        if undelivered_seen[r["delivery_id"]] > deadline + 10:
            late.append((r["delivery_id"], undelivered_seen[r["delivery_id"]] - deadline))
    assert late == [], f"undelivered records written after their schedule ended: {late[:5]}"
    dead = {r["id"]: r["dead"] for r in await stack.fetch("SELECT id, dead FROM callbacks")}
    assert dead == {DATA_CALLBACK: False, ADVANCED_CALLBACK: False, "chaos-doomed": True}

    # After recovery: in order per device, within the endpoint's rate limit.
    healthy = sorted((r for r in receiver.requests if phases.answered.get(id(r)) == 200), key=lambda r: r.at)
    per_device: dict[str, list[int]] = {}
    for r in healthy:
        if r.path == "/data":
            per_device.setdefault(r.query["device"], []).append(int(r.query["seq"]))
    assert {d: s for d, s in per_device.items() if s != sorted(s)} == {}, "the backlog went out of order"
    busiest = max(sum(1 for r in healthy if t <= r.at < t + 5) for t in (r.at for r in healthy))
    # The token bucket allows at most rate x 5 s + its burst (2 x rate); 3 more for the receiver's clock.
    assert busiest <= RATE_PER_S * 5 + 2 * RATE_PER_S + 3, f"{busiest} requests in 5 s"
    figures.update({"firstFailureOnRecordS": round(on_record_s, 2), "busiest5s": busiest,
                    "undelivered": len(undelivered),
                    "doomedGivenUpAfterDeadlineS": percentiles(
                        [undelivered_seen[r["delivery_id"]] - _created_s(r) - give_up_after
                         for r in undelivered])})
    report("endpoint failing", figures)
    assert rows


def _created_s(row) -> float:
    delivery = row["delivery"]
    return (orjson.loads(delivery) if isinstance(delivery, str) else delivery)["createdAt"] / 1000


async def _always_500(request, rec) -> web.Response:
    return web.Response(status=500, text="never")


async def _watch_undelivered(stack, seen: dict[str, float]) -> None:
    """When each undelivered record first appears (polled every second)."""
    while True:
        for r in await stack.fetch("SELECT delivery_id FROM undelivered_callbacks"):
            seen.setdefault(r["delivery_id"], time.time())
        await asyncio.sleep(1.0)
