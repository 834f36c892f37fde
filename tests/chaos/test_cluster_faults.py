"""Faults at cluster level (issue 15): the supervised workers on a replicated Kafka cluster of three
brokers (replication factor 3, min.insync.replicas 2, acks=all), traffic from three stations, and the
chaos suite's end checks (`check_outcome`: every message delivered, repeats only with the same
webhook-id, one DATA_ADVANCED per message decided as an uninterrupted run would)."""
from __future__ import annotations

import asyncio
import time

import pytest

from backhaul import settings as settings_module
from program.supervised import free_port_block
from tests.chaos.harness import Traffic, callbacks, check_outcome, wait_delivered
from tests.chaos.test_chaos import report, seconds
from tests.cli import Cli
from tests.conftest import wait_until
from tests.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory):
    cluster = KafkaCluster.started(tmp_path_factory.mktemp("kafka-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def on_cluster(kafka_cluster, monkeypatch):
    """This test's processes (and this one) on the cluster; set up before `chaos` reads the settings."""
    for name, value in kafka_cluster.client_env.items():
        monkeypatch.setenv(name, value)
    # BACKHAUL_APPEND_VISIBLE_S is left to its default, 15 s with three copies: at 0.5 s a copy appended
    # 9 ms before its window's deadline was left out during a rolling restart (README "DATA_ADVANCED windows
    # on a replicated cluster").
    monkeypatch.delenv("BACKHAUL_APPEND_VISIBLE_S", raising=False)
    settings_module.settings.cache_clear()
    yield kafka_cluster
    settings_module.settings.cache_clear()


async def under_traffic(stack, receiver, harm) -> dict:
    """Traffic while `await harm()` does its harm, then 8 s more; every message delivered, the chaos
    checks passed and nothing undelivered (the endpoint is well). Returns the figures."""
    traffic = Traffic(stack.devices, stack.stations, per_s=6).start()
    try:
        await asyncio.sleep(seconds(8))
        await harm()
        await asyncio.sleep(seconds(8))
    finally:
        sent = await traffic.stop()
    await wait_delivered(receiver, sent, 150, fetch=stack.fetch)
    figures = await check_outcome(receiver, sent, stack.api, stack.fetch)
    assert not await stack.fetch("SELECT 1 FROM undelivered_callbacks"), "the endpoint was well: none undelivered"
    figures["restarts"] = {n: p["restarts"] for n, p in stack.supervised.view().items()}
    return figures


async def partition_leaders(prefix_topic: str) -> dict[int, int]:
    from backhaul.kafka import make_admin

    admin = make_admin()
    await admin.start()
    try:
        [described] = await admin.describe_topics([prefix_topic])
        return {p["partition"]: p["leader"] for p in described["partitions"]}
    finally:
        await admin.close()


@pytest.mark.timeout(480)
async def test_a_broker_killed_during_traffic_then_restarted(on_cluster, chaos, receiver):
    from backhaul.topics import topic
    from schemas.topics import FRAMES

    stack = await chaos(callbacks(receiver.url))
    leaders = await partition_leaders(topic(FRAMES))
    victim = max(set(leaders.values()), key=list(leaders.values()).count)  # leads the most partitions
    seen: dict = {}

    async def kill_and_restart() -> None:
        await asyncio.to_thread(on_cluster.kafka_sh, "kill-node", str(victim))
        seen["killed"] = time.time()
        await asyncio.sleep(seconds(20))
        seen["moved"] = await partition_leaders(topic(FRAMES))
        await asyncio.to_thread(on_cluster.kafka_sh, "start-node", str(victim))

    figures = await under_traffic(stack, receiver, kill_and_restart)
    assert victim not in seen["moved"].values(), f"the killed broker {victim} still leads: {seen['moved']}"
    figures.update(victim=victim, leadersBefore=leaders, leadersWhileDown=seen["moved"],
                   requestsAfterKill=sum(1 for r in receiver.requests if r.at > seen["killed"]))
    report("broker killed", figures)


async def all_in_sync(names: list[str]) -> bool:
    """Every partition of `names` has its three copies in sync."""
    from backhaul.kafka import make_admin

    admin = make_admin()
    await admin.start()
    try:
        return all(len(p["isr"]) == 3 for t in await admin.describe_topics(names) for p in t["partitions"])
    finally:
        await admin.close()


@pytest.mark.timeout(600)
async def test_a_rolling_restart_of_every_broker_during_traffic(on_cluster, chaos, receiver):
    from backhaul.topics import topic
    from schemas.topics import ALL_TOPICS

    stack = await chaos(callbacks(receiver.url))
    names = [topic(spec.name) for spec in ALL_TOPICS]
    restarted = []

    async def restart_each_broker() -> None:
        for node in (1, 2, 3):
            # As an operator upgrades: one broker at a time, the next once every copy is back in sync.
            await asyncio.to_thread(on_cluster.kafka_sh, "stop-node", str(node))
            await asyncio.sleep(seconds(3))
            await asyncio.to_thread(on_cluster.kafka_sh, "start-node", str(node))
            await wait_until(lambda: all_in_sync(names), 90, f"every copy in sync after broker {node}")
            restarted.append(node)

    figures = await under_traffic(stack, receiver, restart_each_broker)
    assert restarted == [1, 2, 3]
    report("brokers restarted in turn", figures)


@pytest.mark.timeout(600)
async def test_a_rolling_restart_of_every_worker_during_traffic(on_cluster, chaos, receiver):
    stack = await chaos(callbacks(receiver.url))

    async def restart_each_worker() -> None:
        for name in ("ingest", "router", "delivery", "store"):
            before = stack.supervised.pid(name)
            await asyncio.to_thread(backhaul, stack, "restart", name)
            assert stack.supervised.pid(name) not in (None, before)
            await stack.supervised.wait_running()

    figures = await under_traffic(stack, receiver, restart_each_worker)
    view = stack.supervised.view()
    assert all(p["state"] == "running" and p["restarts"] == 0 for p in view.values()), view  # restarts asked for
    report("workers restarted in turn", figures)


@pytest.mark.timeout(600)
async def test_a_third_ingest_instance_added_under_load(on_cluster, chaos, receiver):
    port_base = free_port_block(range(30))  # the instances' metrics ports: base + offset + 10 K, K < 3
    stack = await chaos(callbacks(receiver.url), BACKHAUL_METRICS_PORT_BASE=str(port_base))
    await asyncio.to_thread(backhaul, stack, "scale", "ingest=2")
    await wait_until(lambda: ready(port_base + 1 + 10), 90, "the second ingest instance ready")

    async def add_a_third() -> None:
        answer = await asyncio.to_thread(backhaul, stack, "scale", "ingest=3")
        assert "started ingest-3" in answer
        await wait_until(lambda: ready(port_base + 1 + 20), 90, "the third ingest instance ready")
        await asyncio.sleep(seconds(12))

    figures = await under_traffic(stack, receiver, add_a_third)
    owned = {port: await assigned(port) for port in (stack.supervised.ports["ingest"], port_base + 11, port_base + 21)}
    # Four partitions over three instances: each holds some, none twice.
    assert all(owned.values()), owned
    every = [p for parts in owned.values() for p in parts]
    assert sorted(every) == sorted(set(every)) and len(every) == 4, owned
    figures.update(partitions={str(k): v for k, v in owned.items()})
    report("third ingest added", figures)


def backhaul(stack, *args: str) -> str:
    """`backhaul ARGS` against the test's supervisor (its state folder and settings)."""
    return Cli(stack.env)(*args).stdout


async def ready(port: int) -> bool:
    import aiohttp

    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/ready") as resp:
            return resp.status == 200
    except (aiohttp.ClientError, OSError):
        return False


async def assigned(port: int) -> list[str]:
    """The partitions of `frames` an ingest instance holds, from its /status."""
    import aiohttp

    from backhaul.topics import topic
    from schemas.topics import FRAMES

    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/status") as resp:
        status = await resp.json()
    return [p for p in status["partitions"]["ingest"] if p.rsplit(":", 1)[0] == topic(FRAMES)]
