"""Broker and database faults on the real stack (issue 10, point 6).

Traffic runs through relay, ingest, router, delivery and store, each its own
worker process, to a real HTTP receiver. Kafka is stopped for 30 s and started
again; separately, PostgreSQL is stopped for 60 s and started again (the API
runs then too). Every worker keeps running (same pid, nothing restarts it),
every message sent ends as one callback and one stored row, and every worker's
metrics show the outage (`backhaul_infrastructure_up` 0 during it, 1 after;
the steps that had to wait counted in `backhaul_infrastructure_errors_total`).

Stopping Kafka or PostgreSQL only touches this checkout's own stack (the ports
of its settings); whatever happens, the test starts it again before it ends.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import aiohttp
import orjson
import pytest

from backhaul import db
from backhaul.kafka import Out, make_producer, send_all
from backhaul.topics import topic
from oss.app import bootstrap_root
from program.demo.seed import seed_network
from schemas.topics import FRAMES
from simulator.network import Device, Network
from tests.conftest import ROOT, frame, free_port, wait_until

pytestmark = pytest.mark.integration

ROLES = ("relay", "ingest", "router", "delivery", "store")


def data_callback(receiver_url: str) -> dict:
    return {"callback_subtype": 0, "url": f"{receiver_url}/data", "http_method": "POST",
            "content_type": "application/json", "body_template": '{"device":"{device}","seq":{seqNumber}}'}


def stack_script(name: str, action: str, env: dict[str, str]) -> None:
    """deploy/local/<name> <action> for this checkout's stack (its ports come from `env`)."""
    result = subprocess.run(["bash", str(ROOT / "deploy/local" / name), action], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{name} {action}: {result.stderr[-2000:]}"


class Traffic:
    """Messages published steadily, as gateways do: one the broker does not acknowledge is kept
    and sent again (a new producer after a failure) until it is; `sent` holds the acknowledged ones."""

    def __init__(self, devices: list[str], station: str, per_s: float) -> None:
        self.devices, self.station, self.pause = devices, station, 1 / per_s
        self.sent: list[tuple[str, int]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> "Traffic":
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> list[tuple[str, int]]:
        self._stop.set()
        await self._task
        return self.sent

    async def _run(self) -> None:
        producer, seq = None, 0
        try:
            while not self._stop.is_set():
                seq += 1
                device = self.devices[seq % len(self.devices)]
                record = Out(topic(FRAMES), device.encode(), orjson.dumps(frame(device, seq, station=self.station)))
                while True:
                    try:
                        if producer is None:
                            producer = make_producer(request_timeout_ms=5000)
                            await producer.start()
                        await send_all(producer, [record])
                        break
                    except Exception:  # noqa: BLE001  (the broker is away: keep the message, try again)
                        with contextlib.suppress(Exception):
                            await producer.stop()
                        producer = None
                        await asyncio.sleep(1.0)
                self.sent.append((device, seq))
                await asyncio.sleep(self.pause)
        finally:
            if producer is not None:
                await producer.stop()


async def _ok(answer) -> bool:
    got = await answer
    return got is not None and got[0] == 200


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"{name}(?:\{{(.*)\}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


async def run_pipeline(pipeline, receiver):
    p = await pipeline([data_callback(receiver.url)], roles=ROLES, devices=4, stations=1,
                       env={"BACKHAUL_ADVANCED_WINDOW_S": "2"})
    pids = {w.roles: w.proc.pid for w in p.workers}
    return p, pids


async def add_device(p, device: str) -> int:
    """A device type with one device on the same stations, written to PostgreSQL (the relay carries
    it to the views); returns the configuration records each view has once it has them."""
    stations = p.network.stations
    network = Network(stations, [Device(device, stations[0].lat, stations[0].lng)])
    conn = await db.connect()
    try:
        await seed_network(conn, network, name=f"added-{device}")
    finally:
        await conn.close()
    p.config_records += 2 + len(stations) + 1
    return p.config_records


async def api_reaches_postgresql(api) -> str | None:
    """The API's metrics once they say it reaches PostgreSQL again."""
    text = (await api.get("/metrics"))[2]
    return text if metric_sum(text, "backhaul_infrastructure_up", dependency="postgresql") == 1 else None


async def everything_arrived(p, receiver, sent: list[tuple[str, int]], timeout: float) -> None:
    """Every message sent has exactly one callback and one stored row."""
    expected = set(sent)

    def called() -> set[tuple[str, int]]:
        return {(b["device"], b["seq"]) for b in (orjson.loads(r.body) for r in receiver.requests)}

    await wait_until(lambda: called() >= expected, timeout, f"{len(expected)} callbacks")

    async def stored() -> bool:
        rows = await p.fetch("SELECT device_id, seq_number FROM messages WHERE id NOT LIKE '%:%'")
        return {(r["device_id"], r["seq_number"]) for r in rows} >= expected
    await wait_until(stored, timeout, f"{len(expected)} stored messages")
    await asyncio.sleep(2.0)                         # anything extra would arrive now
    calls: dict[tuple[str, int], list[str]] = {}
    for r in receiver.requests:
        body = orjson.loads(r.body)
        calls.setdefault((body["device"], body["seq"]), []).append(r.headers.get("webhook-id"))
    assert set(calls) == expected
    # Once each: a delivery read again after the outage (a rebalance) is not sent again (workers.taken).
    assert {k: ids for k, ids in calls.items() if len(ids) > 1} == {}


async def reachability(p, dependency: str) -> dict[str, float]:
    """Each worker's backhaul_infrastructure_up for `dependency` (workers that do not use it left out)."""
    seen = {}
    for w in p.workers:
        text = await w.metrics()
        if f'backhaul_infrastructure_up{{dependency="{dependency}"}}' in text:
            seen[w.roles] = metric_sum(text, "backhaul_infrastructure_up", dependency=dependency)
    return seen


async def errors_counted(p, dependency: str) -> dict[str, float]:
    return {w.roles: metric_sum(await w.metrics(), "backhaul_infrastructure_errors_total", dependency=dependency)
            for w in p.workers}


def assert_same_processes(p, pids: dict[str, int]) -> None:
    for w in p.workers:
        assert w.proc.poll() is None, f"{w.roles} exited with {w.proc.returncode}:\n{w.log_tail()}"
        assert w.proc.pid == pids[w.roles]


async def test_kafka_stopped_for_30_s_during_traffic(pipeline, receiver, isolated):
    p, pids = await run_pipeline(pipeline, receiver)
    env = isolated.subprocess_env()
    traffic = Traffic(p.devices, p.stations[0], per_s=5).start()
    try:
        await wait_until(lambda: len(receiver.requests) >= 10, 30, "callbacks before the outage")
        await asyncio.to_thread(stack_script, "kafka.sh", "stop", env)
        stopped = time.monotonic()
        acknowledged = len(traffic.sent)
        # A configuration change the relay cannot publish yet: it must reach every view afterwards.
        config_records = await add_device(p, "FA0171")
        await asyncio.sleep(10)
        during = await reachability(p, "kafka")      # every worker says so within its 2 s check
        await asyncio.sleep(stopped + 30 - time.monotonic())   # the outage: 30 s
        assert len(traffic.sent) == acknowledged     # nothing got through meanwhile
        await asyncio.to_thread(stack_script, "kafka.sh", "start", env)
        outage = time.monotonic() - stopped
        await wait_until(lambda: len(traffic.sent) >= acknowledged + 25, 60, "traffic flowing again")
    finally:
        await asyncio.to_thread(stack_script, "kafka.sh", "start", env)   # whatever happened
        sent = await traffic.stop()
    assert outage >= 30
    assert during == {roles: 0 for roles in ROLES}
    await everything_arrived(p, receiver, sent, timeout=120)
    await p.wait_config(config_records, timeout=60)
    assert_same_processes(p, pids)
    assert await reachability(p, "kafka") == {roles: 1 for roles in ROLES}


class ApiProcess:
    """`backhaul api` as its own process on the test's database, with a root API user."""

    def __init__(self, isolated, log_path) -> None:
        self.isolated, self.log_path = isolated, log_path
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.headers: dict[str, str] = {}

    async def start(self) -> "ApiProcess":
        pool = await db.create_pool(self.isolated.dsn, min_size=1, max_size=1)
        try:
            _, login, token = await bootstrap_root(pool, "faults")
        finally:
            await pool.close()
        self.headers = {"Authorization": "Basic " + base64.b64encode(f"{login}:{token}".encode()).decode()}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "program.cli", "api", "--port", str(self.port)],
                                         cwd=ROOT, env=self.isolated.subprocess_env(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        await wait_until(lambda: self.get("/v2/groups/"), 30, "the API process")
        return self

    async def get(self, path: str) -> tuple[int, dict, dict] | None:
        """(status, headers, JSON body) of a GET, None while the process does not answer."""
        assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
        try:
            async with aiohttp.ClientSession(headers=self.headers) as s, \
                    s.get(f"http://127.0.0.1:{self.port}{path}") as r:
                body = await r.json(content_type=None) if path != "/metrics" else await r.text()
                return r.status, dict(r.headers), body
        except aiohttp.ClientError:
            return None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)


async def test_postgresql_stopped_for_60_s_during_traffic(pipeline, receiver, isolated, tmp_path):
    p, pids = await run_pipeline(pipeline, receiver)
    api = await ApiProcess(isolated, tmp_path / "api.log").start()
    env = isolated.subprocess_env()
    traffic = Traffic(p.devices, p.stations[0], per_s=5).start()
    try:
        await wait_until(lambda: len(receiver.requests) >= 10, 30, "callbacks before the outage")
        assert (await api.get("/v2/groups/"))[0] == 200
        await asyncio.to_thread(stack_script, "postgres.sh", "stop", env)
        stopped = time.monotonic()
        called = len(receiver.requests)
        await asyncio.sleep(10)
        during = await reachability(p, "postgresql")
        # The API answers at once, in the v2 shape: try again shortly.
        status, headers, body = await api.get("/v2/groups/")
        assert (status, headers.get("Retry-After")) == (503, "5") and "database" in body["message"]
        assert metric_sum((await api.get("/metrics"))[2], "backhaul_infrastructure_up", dependency="postgresql") == 0
        await asyncio.sleep(stopped + 60 - time.monotonic())   # the outage: 60 s
        # Callbacks go on without the database: the workers run on their configuration view.
        assert len(receiver.requests) >= called + 5 * 40
        await asyncio.to_thread(stack_script, "postgres.sh", "start", env)
        outage = time.monotonic() - stopped
    finally:
        await asyncio.to_thread(stack_script, "postgres.sh", "start", env)   # whatever happened
        sent = await traffic.stop()
        try:  # the API's pool reconnects by itself (same process)
            await wait_until(lambda: _ok(api.get("/v2/groups/")), 15, "the API answering again")
            api_metrics = await wait_until(lambda: api_reaches_postgresql(api), 10, "the API's check")
        finally:
            api.stop()
    assert outage >= 60
    assert metric_sum(api_metrics, "backhaul_infrastructure_errors_total", stage="api", dependency="postgresql") > 0
    assert during == {"relay": 0, "delivery": 0, "store": 0}   # ingest and router do not use it
    await everything_arrived(p, receiver, sent, timeout=120)
    # A change made once PostgreSQL is back reaches every view: the relay reconnected.
    await p.wait_config(await add_device(p, "FA0172"), timeout=60)
    assert_same_processes(p, pids)
    assert await reachability(p, "postgresql") == {"relay": 1, "delivery": 1, "store": 1}
    errors = await errors_counted(p, "postgresql")
    # Writing rows, reading due retries, reading the outbox: each waited and tried again.
    assert errors["store"] > 0 and errors["delivery"] > 0 and errors["relay"] > 0, errors
