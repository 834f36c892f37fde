"""Fixtures of the chaos suite: a network seeded under the API's root group, run by the supervisor."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from backhaul import settings as settings_module
from tests.api_support import ApiEnv, running_api
from tests.chaos.harness import Supervised, subprocess_env
from tests.conftest import Receiver


@dataclass
class ChaosStack:
    api: ApiEnv
    supervised: Supervised
    devices: list[str]
    stations: list[str]
    ids: dict[str, str]
    env: dict[str, str]          # the supervised processes' environment
    stack_env: dict[str, str]    # for deploy/local scripts acting on the test run's Kafka and PostgreSQL

    async def fetch(self, sql: str, *args) -> list:
        async with self.api.pool.acquire() as conn:
            return await conn.fetch(sql, *args)


@pytest.fixture
def kafka_password() -> str:
    """Backhaul's Kafka password on the test run's stack (the supervisor's state folder is the test's own)."""
    return settings_module.Settings.from_env().kafka_password or ""


@pytest.fixture
async def chaos(isolated, tmp_path, kafka_password):
    """`await chaos(callbacks, devices=N)`: seed a network with three stations and those callbacks,
    start the API (in this process) and the supervised workers; everything is stopped at the end."""
    from backhaul import db
    from program.demo.seed import seed_network
    from simulator.network import build_network

    started: list[Any] = []

    async def start(callbacks: list[dict], *, devices: int = 12, **env: str) -> ChaosStack:
        api_cm = running_api()
        api, root = await api_cm.__aenter__()
        started.append(api_cm)
        network = build_network(3, devices, seed=5)
        conn = await db.connect()
        try:
            ids = await seed_network(conn, network, name="chaos", callbacks=callbacks, parent_group=root)
        finally:
            await conn.close()
        state_dir = tmp_path / "state"
        process_env = subprocess_env(isolated, state_dir, kafka_password, **env)
        supervised = Supervised(state_dir, process_env).start()
        started.append(supervised)
        await supervised.wait_running(2 + len(network.stations) + len(callbacks) + devices)
        return ChaosStack(api, supervised, [d.id for d in network.devices], [s.id for s in network.stations],
                          ids, process_env, isolated.subprocess_env())

    yield start
    for thing in reversed(started):
        if isinstance(thing, Supervised):
            thing.stop()
        else:
            await thing.__aexit__(None, None, None)


@pytest.fixture
async def second_receiver():
    r = await Receiver().start()
    yield r
    await r.stop()
