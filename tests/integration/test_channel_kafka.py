"""The KAFKA channel on our own Kafka: frames -> records read back from the
customer's topic (key, headers, rendered topic and body) over SASL on the gateway listener; the
cluster unreachable then back (retries deliver, cbStatus has the client's error text); kill -9 of
the delivery worker mid-flight (every message arrives, repeats carry the same message-id); a message
given up, then replayed, carries its first id.

The customer's credentials here are Backhaul's own SCRAM-SHA-512 user on the gateway listener
(deploy/local/kafka.sh). SASL PLAIN, the AZURE_EVENT_HUBS channel end to end and a KAFKA callback
with PLAIN: test_channel_sasl_plain.py. The two faults' flows, shared with AZURE_EVENT_HUBS: tests/kafka_faults.py.
"""
from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from backhaul.kafka import make_admin
from backhaul.settings import settings
from program.demo.seed import stable_id
from tests.conftest import ROOT, frame, publish_frames, read_topic
from tests.kafka_faults import CRASH_ENV, OUTAGE_ENV, Proxy, headers_of, kill_9_mid_flight, unreachable_then_back

pytestmark = pytest.mark.integration

BODY = '{"device": "{device}", "seq": {seqNumber}, "data": "{data}", "note": "seq {seqNumber} of {device}"}'
TYPE_ID = stable_id("t", "device-type")  # the device type tests.conftest's pipeline seeds


def gateway() -> str:
    return settings().kafka_gateway


def kafka_callback(bootstrap: str, topic: str, **extra) -> dict:
    return {"id": "kafka", "channel": "KAFKA", "content_type": "application/json", "body_template": BODY,
            "channel_settings": {"bootstrapServers": [bootstrap], "topic": topic, "tls": False,
                                 "sasl": {"mechanism": "SCRAM-SHA-512", "username": settings().kafka_username,
                                          "password": settings().kafka_password}}, **extra}


async def create_topic(name: str, partitions: int = 2) -> None:
    from aiokafka.admin import NewTopic

    admin = make_admin()
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def records_of(name: str, expect: int, timeout: float = 10.0) -> list:
    records = await read_topic(name, timeout=timeout, expect=expect)
    assert len(records) >= expect, f"{len(records)} records in {name}, expected {expect}"
    return records


async def test_frames_become_records_with_key_headers_topic_and_body_rendered(pipeline, isolated):
    customer = f"{isolated.prefix}cust.{TYPE_ID}"
    await create_topic(customer)
    missing = kafka_callback(gateway(), isolated.prefix + "nosuch.{device}", id="missing")
    pipe = await pipeline([kafka_callback(gateway(), isolated.prefix + "cust.{deviceTypeId}"), missing],
                          env={"BACKHAUL_CALLBACK_TIMEOUT_S": "3"})
    device = pipe.devices[0]
    await publish_frames([frame(device, seq, station=pipe.stations[0], data=f"0{seq}ab") for seq in (1, 2, 3)])

    records = await records_of(customer, 3)
    by_seq = {orjson.loads(r.value)["seq"]: r for r in records}
    assert sorted(by_seq) == [1, 2, 3]
    for seq, record in by_seq.items():
        assert record.key == device.encode()
        assert orjson.loads(record.value) == {"device": device, "seq": seq, "data": f"0{seq}ab",
                                              "note": f"seq {seq} of {device}"}
        headers = headers_of(record)
        assert headers["callback-type"] == "DATA_UPLINK"  # the kind of callback (its type and subtype)
        assert headers["message-id"].endswith("/kafka")  # the delivery id: <record id>/<callback id>
    assert len({headers_of(r)["message-id"] for r in records}) == 3
    rows = await pipe.wait_rows("SELECT status, error_class, answer FROM callback_attempts "
                                "WHERE status IS NOT NULL AND callback_id = 'kafka'", 3)
    assert {(r["status"], r["error_class"]) for r in rows} == {(200, "ok")}
    assert all(r["answer"].startswith(customer + "[") for r in rows), "the record's place in cbStatus"
    assert settings().kafka_password not in str(await pipe.fetch("SELECT * FROM callbacks")), "sealed at rest"
    failed = await pipe.wait_rows("SELECT status, error_class, info FROM callback_attempts "
                                  "WHERE callback_id = 'missing' AND status IS NOT NULL", 1, timeout=10)
    topic = f"{isolated.prefix}nosuch.{device}"
    assert (failed[0]["status"], failed[0]["error_class"]) == (600, "other")
    assert failed[0]["info"] == f"UnknownTopicOrPartitionError: topic {topic!r} is not on the cluster"


async def test_an_unreachable_cluster_then_back_retries_deliver_and_cbstatus_has_the_client_error(
        pipeline, isolated):
    customer = f"{isolated.prefix}cust"
    await create_topic(customer)
    proxy = Proxy(gateway())
    pipe = await pipeline([kafka_callback(f"127.0.0.1:{proxy.port}", customer)], env=OUTAGE_ENV)
    try:
        await unreachable_then_back(pipe, proxy, lambda timeout: read_topic(customer, timeout=timeout))
    finally:
        await proxy.close()


async def test_kill_9_of_the_delivery_worker_every_message_arrives_repeats_carry_the_same_id(
        pipeline, isolated, workers):
    customer = f"{isolated.prefix}cust"
    await create_topic(customer, partitions=4)
    pipe = await pipeline([kafka_callback(gateway(), customer)], roles=("relay,ingest,router,store", "delivery"),
                          env=CRASH_ENV, stations=3, devices=100)
    await kill_9_mid_flight(pipe, lambda: workers("delivery", isolated, **CRASH_ENV),
                            lambda timeout: read_topic(customer, timeout=timeout))


async def test_given_up_then_replayed_with_the_same_message_id(pipeline, isolated):
    customer = f"{isolated.prefix}cust"
    await create_topic(customer)
    proxy = Proxy(gateway())
    pipe = await pipeline([kafka_callback(f"127.0.0.1:{proxy.port}", customer)],
                          env={"BACKHAUL_RETRY_SCHEDULE_S": "0.2,0.2", "BACKHAUL_RETRY_JITTER": "0"})
    try:
        await publish_frames([frame(pipe.devices[0], 9, station=pipe.stations[0])])
        [undelivered] = await pipe.wait_rows("SELECT * FROM undelivered_callbacks", 1, 15)
        assert undelivered["callback_id"] == "kafka"
        assert undelivered["callback"]["channel"] == "KAFKA" and undelivered["callback"]["topic"] == customer
        await proxy.open()
        replay = subprocess.run([sys.executable, "-m", "program.cli", "replay", "--callback", "kafka"], cwd=ROOT,
                                env=isolated.subprocess_env(), capture_output=True, text=True, timeout=30)
        assert "replayed 1 " in replay.stdout, replay.stdout + replay.stderr
        [record] = await records_of(customer, 1)
        [ok] = await pipe.wait_rows("SELECT delivery_id FROM callback_attempts WHERE status = 200", 1)
        assert "#r1" in ok["delivery_id"]
        attempts = await pipe.fetch("SELECT delivery_id FROM callback_attempts ORDER BY time")
        assert headers_of(record)["message-id"] == attempts[0]["delivery_id"], "a replay carries the first id"
    finally:
        await proxy.close()
