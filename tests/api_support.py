"""Test support: a fresh database, the real API on 127.0.0.1, and a small client.

Test modules import the fixtures they use (`from tests.api_support import api`).
The database `backhaul_test_api` is created once per test process and shared
by every module that imports the fixtures.
"""
from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest_asyncio
from aiohttp.test_utils import TestServer
from yarl import URL

from backhaul.db import create_pool, migrate
from backhaul.settings import settings
from oss.app import bootstrap_root, create_app
from oss.context import COVERAGE_JOBS, JOBS
from oss.login_throttle import LoginPolicy
from tests.conftest import LOOPBACK_RECEIVERS

DATABASE = "backhaul_test_api"
TEST_LIMITS = "device-messages=0/1,device-list=0/1,bulk=0/1,default=0/1"


def dsn_for(database: str) -> str:
    return str(URL(settings().database_url).with_path(f"/{database}"))


async def fresh_database(name: str = DATABASE) -> str:
    admin = await asyncpg.connect(dsn_for("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(dsn_for(name))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn_for(name)


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any


class Client:
    """Basic-auth JSON client for one API user."""

    def __init__(self, session: aiohttp.ClientSession, base: str, login: str, token: str) -> None:
        self.session, self.base, self.login, self.token = session, base, login, token

    def as_user(self, login: str, token: str) -> "Client":
        return Client(self.session, self.base, login, token)

    async def call(self, method: str, path: str, body: Any = None, *, params: dict | None = None,
                   csv: str | None = None, auth: bool = True, headers: dict | None = None) -> Reply:
        sent = dict(headers or {})
        if auth:
            sent["Authorization"] = "Basic " + base64.b64encode(f"{self.login}:{self.token}".encode()).decode()
        data = None
        if csv is not None:
            data, sent["Content-Type"] = csv.encode(), "text/csv"
        elif body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            sent.setdefault("Content-Type", "application/json")
        url = path if path.startswith("http") else f"{self.base}{path}"
        async with self.session.request(method, url, data=data, params=params, headers=sent) as resp:
            raw = await resp.read()
            return Reply(resp.status, orjson.loads(raw) if raw and resp.content_type == "application/json" else raw,
                         resp.headers)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("POST", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("PUT", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.call("DELETE", path, **kw)


@dataclass
class ApiEnv:
    pool: asyncpg.Pool
    server: TestServer
    base: str
    root_group: str
    root: Client
    app: Any

    async def wait_jobs(self) -> None:
        await self.app[JOBS].wait()
        await self.app[COVERAGE_JOBS].wait()


_state: dict[str, Any] = {"env": None, "users": 0}


async def _start() -> ApiEnv:
    dsn = await fresh_database()
    pool = await create_pool(dsn, min_size=2, max_size=10)
    # Every test client comes from 127.0.0.1: the per-address login throttle is off here
    # (tests/security/test_login.py runs its own API to test it).
    app = create_app(pool, rate_limits=TEST_LIMITS, keepalive_min_s=60, auth_cache_s=5, bulk_chunk=1000,
                     callback_allow_networks=LOOPBACK_RECEIVERS, login_policy=LoginPolicy(address_free_failures=0))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    group, login, token = await bootstrap_root(pool, "Backhaul test root")
    base = f"http://127.0.0.1:{server.port}/v2"
    return ApiEnv(pool, server, base, group, Client(session, base, login, token), app)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api() -> ApiEnv:
    """The running API on a fresh database, with a root API user holding every right."""
    if _state["env"] is None:
        _state["env"] = await _start()
    _state["users"] += 1
    yield _state["env"]
    _state["users"] -= 1
    if _state["users"] == 0:
        env, _state["env"] = _state["env"], None
        await env.root.session.close()
        await env.server.close()
        await env.pool.close()


@dataclass
class Tenant:
    group: str
    contract: str
    client: Client


def check(reply: Reply, status: int) -> Any:
    assert reply.status == status, f"expected {status}, got {reply.status}: {reply.body!r}"
    return reply.body


async def make_tenant(env: ApiEnv, name: str, *, parent: str | None = None, profiles: tuple[str, ...] | None = None,
                      max_tokens: int = 0) -> Tenant:
    """A group under `parent` (default the root), a contract on it, and an API user of that group."""
    from oss.profiles import ADMIN
    group = check(await env.root.post("/groups/", {"name": name, "parentId": parent or env.root_group,
                                                   "timezone": "Europe/Paris"}), 201)["id"]
    contract = check(await env.root.post("/contract-infos/", {"name": f"{name} contract", "groupId": group,
                                                              "maxTokens": max_tokens, "tokenDuration": 12}), 201)["id"]
    user = check(await env.root.post("/api-users/", {"groupId": group, "name": f"{name} api",
                                                     "profileIds": list(profiles or (ADMIN,))}), 201)
    return Tenant(group, contract, env.root.as_user(user["id"], user["accessToken"]))


async def make_device_type(client: Client, tenant: Tenant, **extra: Any) -> str:
    body = {"name": "sensor", "groupId": tenant.group, "contractId": tenant.contract, **extra}
    return check(await client.post("/device-types/", body), 201)["id"]


@contextlib.asynccontextmanager
async def running_api(**options: Any) -> AsyncIterator[tuple[ApiEnv, str]]:
    """The API on the current settings' database (the `isolated` one in pipeline tests), with a root
    API user; yields (env, root group). `options` go to `create_app`."""
    pool = await create_pool(min_size=1, max_size=5)
    app = create_app(pool, **{"rate_limits": TEST_LIMITS, "keepalive_min_s": 60, **options})
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    try:
        group, login, token = await bootstrap_root(pool, "root")
        base = f"http://127.0.0.1:{server.port}/v2"
        yield ApiEnv(pool, server, base, group, Client(session, base, login, token), app), group
    finally:
        await session.close()
        await server.close()
        await pool.close()
