"""Backhaul's topics are created with the configured copies and in-sync copies, and a refusal is said."""
from __future__ import annotations

import uuid

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from backhaul import settings as settings_module
from backhaul.kafka import ensure_topics, make_admin
from schemas.topics import ALL_TOPICS, topic_name

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def prefix(stack):
    prefix = f"tc{uuid.uuid4().hex[:8]}."
    yield prefix
    admin = make_admin()
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


async def test_every_topic_gets_min_insync_replicas_and_compaction_where_it_belongs(prefix):
    await ensure_topics(prefix=prefix)
    admin = make_admin()
    await admin.start()
    try:
        names = [topic_name(spec.name, prefix) for spec in ALL_TOPICS]
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        configs = {res[3]: {c[0]: c[1] for c in res[4]} for r in described for res in r.resources}
        topics = {t["topic"]: t for t in await admin.describe_topics(names)}
    finally:
        await admin.close()
    s = settings_module.settings()
    for spec in ALL_TOPICS:
        name = topic_name(spec.name, prefix)
        assert configs[name]["min.insync.replicas"] == str(s.kafka_min_insync_replicas), name
        assert configs[name]["cleanup.policy"] == ("compact" if spec.compacted else "delete"), name
        assert {len(p["replicas"]) for p in topics[name]["partitions"]} == {s.kafka_replication_factor}, name


async def test_a_topic_the_broker_refuses_is_an_error_naming_it_and_the_reason(prefix, monkeypatch):
    # More copies than this stack has brokers: the broker refuses each topic in its answer.
    monkeypatch.setenv("BACKHAUL_KAFKA_REPLICATION_FACTOR", "9")
    monkeypatch.setenv("BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS", "1")
    settings_module.settings.cache_clear()
    try:
        with pytest.raises(RuntimeError) as refused:
            await ensure_topics(prefix=prefix)
    finally:
        monkeypatch.undo()
        settings_module.settings.cache_clear()
    text = str(refused.value)
    assert text.startswith("Kafka refused to create topics: ")
    assert f"{prefix}frames" in text and "replication factor" in text.lower()
