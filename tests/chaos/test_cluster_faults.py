"""Faults at cluster level (issue 15): the supervised workers on a replicated Kafka cluster of three
brokers (replication factor 3, min.insync.replicas 2, acks=all), traffic from three stations, and the
chaos suite's end checks (`check_outcome`: every message delivered, repeats only with the same
webhook-id, one DATA_ADVANCED per message decided as an uninterrupted run would)."""
from __future__ import annotations

import asyncio
import time

import pytest

from backhaul import settings as settings_module
from tests.chaos.harness import Traffic, callbacks, check_outcome, wait_delivered
from tests.chaos.test_chaos import report, seconds
from tests.kafka_cluster import KafkaCluster, free_port_block

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory):
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster"), free_port_block()).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def on_cluster(kafka_cluster, monkeypatch):
    """This test's processes (and this one) on the cluster; set up before `chaos` reads the settings."""
    for name, value in kafka_cluster.client_env.items():
        monkeypatch.setenv(name, value)
    settings_module.settings.cache_clear()
    yield kafka_cluster
    settings_module.settings.cache_clear()


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
    traffic = Traffic(stack.devices, stack.stations, per_s=6).start()
    try:
        await asyncio.sleep(seconds(10))
        await asyncio.to_thread(on_cluster.kafka_sh, "kill-node", str(victim))
        killed = time.time()
        await asyncio.sleep(seconds(20))
        moved = await partition_leaders(topic(FRAMES))
        await asyncio.to_thread(on_cluster.kafka_sh, "start-node", str(victim))
        await asyncio.sleep(seconds(15))
    finally:
        sent = await traffic.stop()
    await wait_delivered(receiver, sent, 150, fetch=stack.fetch)
    figures = await check_outcome(receiver, sent, stack.api, stack.fetch)
    assert victim not in moved.values(), f"the killed broker {victim} still leads: {moved}"
    assert not await stack.fetch("SELECT 1 FROM undelivered_callbacks"), "the endpoint was well: none undelivered"
    after = [r.at for r in receiver.requests if r.at > killed]
    figures.update(victim=victim, leadersBefore=leaders, leadersWhileDown=moved, requestsAfterKill=len(after),
                   restarts={n: p["restarts"] for n, p in stack.supervised.view().items()})
    report("broker killed", figures)
