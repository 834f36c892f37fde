"""Shared fixtures: the real local stack, isolated topics and databases, workers, receivers.

Integration tests need Kafka and PostgreSQL running (`./scripts/test` starts
them). Each test that asks for `isolated` gets its own topic prefix and its
own database, so tests never see each other's records.
"""
from __future__ import annotations

import asyncio
import contextlib
import email
import email.message
import email.policy
import os
import socket
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from backhaul import settings as settings_module
from program.supervised import WorkerProcess, free_port  # noqa: F401  (tests import free_port from here)

if TYPE_CHECKING:
    from simulator.network import Network

ROOT = Path(__file__).resolve().parent.parent
# The destination allow-list of every test process and API: the receivers' address, nothing more.
LOOPBACK_RECEIVERS = "127.0.0.1/32"


def _admin_dsn() -> str:
    """The local server's `postgres` database, for creating and dropping test databases."""
    url = urllib.parse.urlsplit(settings_module.Settings.from_env().database_url)
    return urllib.parse.urlunsplit(url._replace(path="/postgres"))


ADMIN_DSN = _admin_dsn()


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


@pytest.fixture(scope="session", autouse=True)
def secret_key() -> Path | None:
    """The development key that seals callback secrets, as `backhaul up` makes it (.local, mode 600);
    worker subprocesses find it there too. None when the environment gives the keys."""
    from backhaul.secretbox import dev_key_file, ensure_dev_key_file

    conf = settings_module.Settings.from_env()
    if conf.secret_keys or conf.secret_key_file:
        return None
    return ensure_dev_key_file(dev_key_file(conf))


@pytest.fixture(scope="session")
def stack() -> None:
    """Kafka and PostgreSQL must be up (./scripts/test starts them)."""
    conf = settings_module.Settings.from_env()
    kafka_host, kafka_port = conf.kafka_bootstrap.split(",")[0].rsplit(":", 1)
    pg = urllib.parse.urlsplit(conf.database_url)
    missing = [name for name, host, port in (("Kafka", kafka_host, int(kafka_port)),
                                             ("PostgreSQL", pg.hostname, pg.port or 5432))
               if not _port_open(host, port)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not running: start them with `deploy/local/kafka.sh start` and "
                    f"`deploy/local/postgres.sh start`, or run the tests with ./scripts/test")


@dataclass
class Isolated:
    """One test's private corner of the stack."""

    prefix: str
    database: str
    dsn: str
    env: dict[str, str] = field(default_factory=dict)

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **self.env, **extra}


@pytest.fixture
async def isolated(stack, monkeypatch) -> AsyncIterator[Isolated]:
    """A fresh topic prefix and database, applied to this process's settings too."""
    from backhaul import db
    from backhaul.kafka import ensure_topics

    tag = uuid.uuid4().hex[:10]
    database = f"bh_test_{tag}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    dsn = urllib.parse.urlunsplit(urllib.parse.urlsplit(ADMIN_DSN)._replace(path=f"/{database}"))
    env = {
        "BACKHAUL_TOPIC_PREFIX": f"t{tag}.",
        "BACKHAUL_DATABASE_URL": dsn,
        "BACKHAUL_LOG_LEVEL": "INFO",
        # Receivers listen on 127.0.0.1: the tests opt in to it explicitly (the default refuses loopback).
        "BACKHAUL_CALLBACK_ALLOW_NETWORKS": LOOPBACK_RECEIVERS,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings_module.settings.cache_clear()
    await ensure_topics()
    conn = await db.connect()
    await db.migrate(conn)
    await conn.close()
    try:
        yield Isolated(f"t{tag}.", database, dsn, env)
    finally:
        await _delete_topics(f"t{tag}.")
        settings_module.settings.cache_clear()
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def _delete_topics(prefix: str) -> None:
    """Delete a test's topics: thousands of left-over partitions make the broker start slowly
    (minutes) and every metadata answer larger. Best effort: a broker a test stopped may be away."""
    from backhaul.kafka import make_admin

    admin = make_admin()
    try:
        await asyncio.wait_for(admin.start(), 10)
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names, timeout_ms=10000)
    except Exception:  # noqa: BLE001 - cleanup only
        pass
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


@pytest.fixture
def workers(tmp_path):
    """Start worker subprocesses; every one is stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(roles: str, isolated: Isolated, **env: str) -> WorkerProcess:
        w = WorkerProcess(roles, isolated.subprocess_env(**env), tmp_path / f"worker-{len(started)}-{roles}.log")
        started.append(w.start())
        return w

    yield start
    for w in started:
        w.stop()


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A real aiohttp server standing in for a customer's endpoint."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.port = free_port()
        self.behaviour = None  # optional async (request, Received) -> web.Response
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rec = Received(request.method, request.path, dict(request.query), dict(request.headers),
                       await request.read(), time.time())
        self.requests.append(rec)
        if self.behaviour is not None:
            return await self.behaviour(request, rec)
        return web.Response(text="ok")

    async def start(self) -> "Receiver":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def wait_for(self, count: int, timeout: float, path_prefix: str = "") -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [r for r in self.requests if r.path.startswith(path_prefix)]
            if len(got) >= count:
                return got
            await asyncio.sleep(0.1)
        return [r for r in self.requests if r.path.startswith(path_prefix)]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def make_receiver() -> AsyncIterator:
    """More receivers (each its own endpoint), stopped at the end of the test."""
    started: list[Receiver] = []

    async def make(behaviour=None) -> Receiver:
        r = Receiver()
        r.behaviour = behaviour
        started.append(await r.start())
        return r

    yield make
    for r in started:
        await r.stop()


class Inbox:
    """aiosmtpd handler keeping every mail it receives; refuses the addresses in `refuse`."""

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.mails: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse = refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox

    @property
    def env(self) -> dict[str, str]:
        """The worker settings that send mail here."""
        return {"BACKHAUL_SMTP_HOST": self.host, "BACKHAUL_SMTP_PORT": str(self.port)}

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for rcpts, m in self.inbox.mails if address in rcpts]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1; nobody@example.com is refused."""
    from aiosmtpd.controller import Controller

    inbox = Inbox(refuse={"nobody@example.com"})
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer(controller.hostname, controller.port, inbox)
    finally:
        controller.stop()


async def wait_until(predicate, timeout: float, what: str = "condition", interval: float = 0.1):
    """Poll `predicate` (sync or async) until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def at_least(items: list, n: int) -> list | None:
    """`items` if there are `n` of them (a predicate for wait_until)."""
    return items if len(items) >= n else None


def frame(device: str, seq: int, *, station: str, data: str = "", rssi: float = -100.0, snr: float = 12.0,
          ack: bool = False, oob: bool = False, rep: int = 1, time_ms: int | None = None) -> dict:
    """One radio frame as a station publishes it."""
    return {"station": station, "device": device, "seqNumber": seq, "data": data, "rssi": rssi, "snr": snr,
            "time": int(time.time() * 1000) if time_ms is None else time_ms, "freq": 868_130_000, "rep": rep,
            "ack": ack, "oob": oob}


async def publish_frames(frames: list[dict]) -> None:
    """Publish frames to the `frames` topic, keyed by device, and wait for the broker."""
    import orjson

    from backhaul.kafka import Out, make_producer, send_all
    from backhaul.topics import topic
    from schemas.topics import FRAMES

    producer = make_producer()
    await producer.start()
    try:
        await send_all(producer, [Out(topic(FRAMES), f["device"].encode(), orjson.dumps(f)) for f in frames])
    finally:
        await producer.stop()


@dataclass
class Pipeline:
    """A seeded network and the workers running it."""

    network: Network
    ids: dict[str, str]
    workers: list[WorkerProcess]
    config_records: int

    @property
    def worker(self) -> WorkerProcess:
        return self.workers[0]

    @property
    def devices(self) -> list[str]:
        return [d.id for d in self.network.devices]

    @property
    def stations(self) -> list[str]:
        return [s.id for s in self.network.stations]

    async def fetch(self, sql: str, *args) -> list[asyncpg.Record]:
        """Rows of the test's database (jsonb decoded)."""
        import orjson

        from backhaul import db

        conn = await db.connect()
        try:
            await conn.set_type_codec("jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads,
                                      schema="pg_catalog")
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def wait_rows(self, sql: str, n: int, timeout: float = 30.0, *args) -> list[asyncpg.Record]:
        """The rows of `sql` once there are at least `n`."""
        async def enough():
            rows = await self.fetch(sql, *args)
            return rows if len(rows) >= n else None
        return await wait_until(enough, timeout, f"{n} rows of {sql!r}")

    async def add_device_type(self, name: str, devices: list[str], callbacks: list[dict] = (),
                              **columns) -> dict[str, str]:
        """Seed another device type (columns as keyword arguments) with its own devices and
        callbacks, on the same stations, and wait until the workers see it."""
        from backhaul import db
        from program.demo.seed import seed_network
        from simulator.network import Device, Network

        stations = self.network.stations
        network = Network(stations, [Device(d, stations[0].lat, stations[0].lng) for d in devices])
        conn = await db.connect()
        try:
            ids = await seed_network(conn, network, name=name, callbacks=callbacks, device_type=columns)
        finally:
            await conn.close()
        self.config_records += 2 + len(stations) + len(callbacks) + len(devices)
        await self.wait_config(self.config_records)
        return ids

    async def wait_config(self, records: int, timeout: float = 30.0) -> None:
        """Every worker's configuration view has applied at least `records` records."""
        await wait_views(self.workers, records, timeout)


async def wait_views(workers: list[WorkerProcess], records: int, timeout: float = 30.0) -> None:
    """Every worker's configuration view has applied at least `records` records (a worker
    without a view, relay or store alone, has nothing to wait for)."""
    async with aiohttp.ClientSession() as session:
        for w in workers:
            async def applied(w=w) -> bool:
                async with session.get(f"http://127.0.0.1:{w.port}/status") as resp:
                    status = await resp.json()
                return "config" in status and (status["config"] is None or status["config"] >= records)
            await wait_until(applied, timeout, f"{records} config records in worker {w.roles}")


def seeded_records(network: Network, callbacks: int = 0) -> int:
    """The configuration records `seed_network` writes: group, device type, stations, callbacks, devices."""
    return 2 + len(network.stations) + callbacks + len(network.devices)


PIPELINE_ROLES = "relay,ingest,router,delivery,store"


@pytest.fixture
def pipeline(isolated, workers):
    """Seed a network with callbacks and run it: `await pipeline(callbacks, ...)`.

    `roles` is a list of worker role sets (one subprocess each); `env` holds
    BACKHAUL_* settings for every worker; `device_type` more device type columns; `parent_group`
    the group the network's group goes under (the root group of `running_api`, to read it there).
    """
    from backhaul import db
    from program.demo.seed import seed_network
    from simulator.network import build_network

    async def start(callbacks: list[dict], *, roles: tuple[str, ...] = (PIPELINE_ROLES,), env: dict | None = None,
                    stations: int = 2, devices: int = 4, keep_alive: int = 0, payload_config: str | None = None,
                    device_type: dict | None = None, parent_group: str | None = None) -> Pipeline:
        network = build_network(stations, devices, seed=11)
        conn = await db.connect()
        try:
            ids = await seed_network(conn, network, name="t", callbacks=callbacks, keep_alive=keep_alive,
                                     payload_config=payload_config, device_type=device_type,
                                     parent_group=parent_group)
        finally:
            await conn.close()
        started = [workers(r, isolated, **(env or {})) for r in roles]
        for w in started:
            await w.wait_ready()
        p = Pipeline(network, ids, started, seeded_records(network, len(callbacks)))
        await p.wait_config(p.config_records)
        return p

    return start


async def read_topic(name: str, *, timeout: float = 10.0, expect: int | None = None) -> list:
    """Every record of a topic (from the beginning), waiting up to `timeout` for `expect` records."""
    from backhaul.kafka import make_consumer

    consumer = make_consumer(name, group=None)
    await consumer.start()
    out = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                out.extend(records)
            if expect is not None and len(out) >= expect:
                break
            if expect is None and not batch and out:
                break
    finally:
        await consumer.stop()
    return out


async def consumer_group_caught_up(group: str, topics: list[str]) -> bool:
    """True when the consumer group has committed every record of the topics (a stage is idle)."""
    from aiokafka import TopicPartition

    from backhaul.kafka import make_admin, make_consumer

    admin = make_admin()
    consumer = make_consumer(group=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        if not tps:
            await consumer._client.force_metadata_update()
            tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(tps)
        return all(end == 0 or (tp in committed and committed[tp].offset >= end) for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


@dataclass
class Gateway:
    """A base-station gateway's Kafka credentials (deploy/local/kafka.sh add-gateway)."""

    name: str
    password: str

    def producer(self, **overrides):
        """A producer on the gateway listener, as this gateway."""
        from backhaul.kafka import make_gateway_producer

        return make_gateway_producer(self.name, self.password, **overrides)


@pytest.fixture
def gateway(isolated) -> Iterator[Gateway]:
    """A gateway allowed to produce to this test's `frames` topic and nothing else; removed afterwards."""
    import subprocess

    script = ROOT / "deploy/local/kafka.sh"
    name = f"gw-{isolated.prefix.strip('.')}"
    result = subprocess.run(["bash", str(script), "add-gateway", name], env=isolated.subprocess_env(),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    printed, password = result.stdout.split()
    assert printed == name
    yield Gateway(name, password)
    subprocess.run(["bash", str(script), "remove-gateway", name], env=isolated.subprocess_env(),
                   capture_output=True, text=True, timeout=180)


# Skips CI accepts, each with its reason (reason text -> why it may skip). Anything else that skips
# fails a run with BACKHAUL_FAIL_ON_SKIP=1 (.ci/run sets it): a test that skips in CI checks nothing.
ALLOWED_SKIPS: dict[str, str] = {}


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get("BACKHAUL_FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    unexpected = [r for r in skipped if _skip_reason(r) not in ALLOWED_SKIPS]
    if unexpected:
        reporter.write_line(f"\n{len(unexpected)} test(s) skipped without an allowed reason "
                            f"(tests/conftest.py ALLOWED_SKIPS):", red=True)
        for r in unexpected:
            reporter.write_line(f"  {r.nodeid}: {_skip_reason(r)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return longrepr[2].removeprefix("Skipped: ") if isinstance(longrepr, tuple) else str(longrepr)
