"""Shared fixtures: the real local stack, isolated topics and databases, workers, receivers.

Integration tests need Kafka and PostgreSQL running (`./scripts/test` starts
them). Each test that asks for `isolated` gets its own topic prefix and its
own database, so tests never see each other's records.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from backhaul import settings as settings_module

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("BACKHAUL_TEST_ADMIN_DSN", "postgresql://backhaul@127.0.0.1:55432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


@pytest.fixture(scope="session")
def stack() -> None:
    """Kafka and PostgreSQL must be up (./scripts/test starts them)."""
    missing = [name for name, port in (("Kafka", 29092), ("PostgreSQL", 55432)) if not _port_open("127.0.0.1", port)]
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
    dsn = f"postgresql://backhaul@127.0.0.1:55432/{database}"
    env = {
        "BACKHAUL_TOPIC_PREFIX": f"t{tag}.",
        "BACKHAUL_DATABASE_URL": dsn,
        "BACKHAUL_LOG_LEVEL": "INFO",
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
        settings_module.settings.cache_clear()
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


class WorkerProcess:
    """`backhaul worker` in a real subprocess, with its own /status port."""

    def __init__(self, roles: str, env: dict[str, str], log_path: Path) -> None:
        self.roles = roles
        self.env = env
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backhaul.cli", "worker", "--roles", self.roles, "--metrics-port", str(self.port)],
            env=self.env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
        return self

    async def wait_ready(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker {self.roles} exited with {self.proc.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"http://127.0.0.1:{self.port}/status") as resp:
                        status = await resp.json()
                        if status.get("ready"):
                            return status
                await asyncio.sleep(0.2)
        raise TimeoutError(f"worker {self.roles} not ready in {timeout} s:\n{self.log_tail()}")

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.port}/metrics") as resp:
                return await resp.text()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def terminate(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()


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
        w.terminate()


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
        self._runner = web.AppRunner(app, access_log=None)
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
