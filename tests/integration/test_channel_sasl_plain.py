"""SASL PLAIN on our own Kafka (deploy/local/kafka.sh add-plain-user: PLAIN beside SCRAM on the gateway
listener): the AZURE_EVENT_HUBS channel end to end, as Event Hubs sees it (user `$ConnectionString`,
password the whole connection string, its EntityPath the topic), a wrong SharedAccessKey refused
with the broker's SASL error in cbStatus, its faults (the cluster unreachable then back: retries deliver,
cbStatus has the client's error text; kill -9 of the delivery worker mid-flight: every message arrives,
repeats carry the same message-id; flows shared with KAFKA: tests/kafka_faults.py), and a KAFKA callback
whose `sasl.mechanism` is PLAIN.

PLAIN's users are static (read at the broker's start): the users and topics here are fixed, so only
the first run on a data directory restarts the broker; records of earlier runs are told apart by a
per-test tag in the body.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

import orjson
import pytest

from backhaul.kafka import make_admin
from backhaul.settings import settings
from tests.conftest import ROOT, frame, publish_frames, read_topic
from tests.kafka_faults import CRASH_ENV, OUTAGE_ENV, Proxy, Read, headers_of, kill_9_mid_flight, unreachable_then_back

pytestmark = pytest.mark.integration

HUB = "plain-hub"  # the Event Hub (EntityPath); a topic outside every test prefix, so it outlives a test
HUB_KEY = "c2VjcmV0LWtleS0xMjM0NTY3ODkwYWJj="
CONNECTION = ("Endpoint=sb://backhaul-test.servicebus.windows.net/;SharedAccessKeyName=send;"
              f"SharedAccessKey={HUB_KEY};EntityPath={HUB}")
CUSTOMER = "plain-cust"  # the KAFKA PLAIN customer's topic
PLAIN_USER, PLAIN_PASSWORD = "plain-customer", "plain-customer-password-1"
BODY = '{"tag": "{tag}", "device": "{device}", "seq": {seqNumber}}'


def add_plain_user(name: str, password: str, topic: str) -> None:
    result = subprocess.run(["bash", str(ROOT / "deploy/local/kafka.sh"), "add-plain-user", name, password, topic],
                            env=os.environ.copy(), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def plain_users() -> Iterator[None]:
    """The two PLAIN users, each allowed to write its own topic only."""
    add_plain_user("$ConnectionString", CONNECTION, HUB)
    add_plain_user(PLAIN_USER, PLAIN_PASSWORD, CUSTOMER)
    yield


async def ensure_topic(name: str) -> None:
    from aiokafka.admin import NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = make_admin()
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(name, 2, 1)])
    finally:
        await admin.close()


def tagged_in(topic: str, tag: str) -> Read:
    """A reader of this test's records of a shared topic (its tag in the body)."""
    async def read(timeout: float) -> list:
        return [r for r in await read_topic(topic, timeout=timeout) if orjson.loads(r.value)["tag"] == tag]
    return read


async def tagged(topic: str, tag: str, expect: int) -> list:
    """This test's `expect` records of a shared topic."""
    mine: list = []
    for _ in range(20):
        mine = await tagged_in(topic, tag)(3)
        if len(mine) >= expect:
            break
    assert len(mine) == expect, f"{len(mine)} records tagged {tag} in {topic}, expected {expect}"
    return mine


def body(tag: str) -> str:
    return BODY.replace("{tag}", tag)


def hub_callback(id_: str, tag: str, connection: str = CONNECTION, bootstrap: str = "") -> dict:
    """An AZURE_EVENT_HUBS callback on our Kafka's gateway listener (or `bootstrap`), without TLS."""
    return {"id": id_, "channel": "AZURE_EVENT_HUBS", "content_type": "application/json", "body_template": body(tag),
            "channel_settings": {"connectionString": connection, "tls": False,
                                 "bootstrapServers": [bootstrap or settings().kafka_gateway]}}


async def test_event_hubs_delivers_over_sasl_plain_and_a_wrong_key_gets_the_sasl_error(
        plain_users, pipeline, isolated):
    await ensure_topic(HUB)
    tag = isolated.prefix
    wrong = CONNECTION.replace(HUB_KEY, "d3Jvbmcta2V5LTEyMzQ1Njc4OTBhYmNkZWY=")
    hubs = [hub_callback("hubs", tag), hub_callback("wrong", tag, wrong)]
    pipe = await pipeline(hubs, env={"BACKHAUL_RETRY_SCHEDULE_S": "30", "BACKHAUL_RETRY_JITTER": "0"})
    device = pipe.devices[0]
    await publish_frames([frame(device, seq, station=pipe.stations[0]) for seq in (1, 2)])

    records = await tagged(HUB, tag, 2)
    assert sorted(orjson.loads(r.value)["seq"] for r in records) == [1, 2]
    for record in records:
        assert record.key == device.encode()
        assert orjson.loads(record.value) == {"tag": tag, "device": device, "seq": orjson.loads(record.value)["seq"]}
        headers = headers_of(record)
        assert headers["callback-type"] == "DATA_UPLINK"
        assert headers["message-id"].endswith("/hubs")
    rows = await pipe.wait_rows("SELECT status, error_class, answer FROM callback_attempts "
                                "WHERE status IS NOT NULL AND callback_id = 'hubs'", 2)
    assert {(r["status"], r["error_class"]) for r in rows} == {(200, "ok")}
    assert all(r["answer"].startswith(HUB + "[") for r in rows)

    [refused, *_] = await pipe.wait_rows("SELECT status, info FROM callback_attempts "
                                         "WHERE status IS NOT NULL AND callback_id = 'wrong'", 1, timeout=20)
    print("a wrong SharedAccessKey:", refused["info"])
    assert refused["status"] == 600
    assert "SaslAuthenticationFailed" in refused["info"] and "SASL PLAIN as $ConnectionString" in refused["info"]
    assert "d3Jvbmcta2V5" not in refused["info"] and HUB_KEY not in refused["info"], "no secret in cbStatus"
    assert HUB_KEY not in str(await pipe.fetch("SELECT * FROM callbacks")), "sealed at rest"


async def test_a_kafka_callback_with_sasl_plain_delivers_to_its_topic_and_no_other(plain_users, pipeline, isolated):
    await ensure_topic(CUSTOMER)
    await ensure_topic(HUB)
    tag = isolated.prefix
    callbacks = [{"id": id_, "channel": "KAFKA", "content_type": "application/json", "body_template": body(tag),
                  "channel_settings": {"bootstrapServers": [settings().kafka_gateway], "topic": topic, "tls": False,
                                       "sasl": {"mechanism": "PLAIN", "username": PLAIN_USER,
                                                "password": PLAIN_PASSWORD}}}
                 for id_, topic in (("plain", CUSTOMER), ("elsewhere", HUB))]
    pipe = await pipeline(callbacks, env={"BACKHAUL_RETRY_SCHEDULE_S": "30", "BACKHAUL_RETRY_JITTER": "0"})
    await publish_frames([frame(pipe.devices[0], 7, station=pipe.stations[0])])
    [record] = await tagged(CUSTOMER, tag, 1)
    assert orjson.loads(record.value) == {"tag": tag, "device": pipe.devices[0], "seq": 7}
    assert dict(record.headers)["message-id"].decode().endswith("/plain")
    [denied, *_] = await pipe.wait_rows("SELECT status, info FROM callback_attempts "
                                        "WHERE status IS NOT NULL AND callback_id = 'elsewhere'", 1, timeout=20)
    print("PLAIN user on a topic not its own:", denied["info"])
    assert denied["status"] == 600 and "TopicAuthorizationFailed" in denied["info"]


async def test_event_hubs_unreachable_then_back_retries_deliver_and_cbstatus_has_the_client_error(
        plain_users, pipeline, isolated):
    await ensure_topic(HUB)
    tag = isolated.prefix
    proxy = Proxy(settings().kafka_gateway)
    pipe = await pipeline([hub_callback("hubs", tag, bootstrap=f"127.0.0.1:{proxy.port}")], env=OUTAGE_ENV)
    try:
        record = await unreachable_then_back(pipe, proxy, tagged_in(HUB, tag))
        assert headers_of(record)["message-id"].endswith("/hubs")
    finally:
        await proxy.close()


async def test_event_hubs_kill_9_of_the_delivery_worker_every_message_arrives_repeats_carry_the_same_id(
        plain_users, pipeline, isolated, workers):
    await ensure_topic(HUB)
    pipe = await pipeline([hub_callback("hubs", isolated.prefix)], roles=("relay,ingest,router,store", "delivery"),
                          env=CRASH_ENV, stations=3, devices=100)
    await kill_9_mid_flight(pipe, lambda: workers("delivery", isolated, **CRASH_ENV), tagged_in(HUB, isolated.prefix))
