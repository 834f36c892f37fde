"""The KAFKA and AZURE_EVENT_HUBS channels on our own Kafka: frames -> records read back from the
customer's topic (key, headers, rendered topic and body) over SASL on the gateway listener; the
cluster unreachable then back (retries deliver, cbStatus has the client's error text); kill -9 of
the delivery worker mid-flight (every message arrives, repeats carry the same message-id); a message
given up, then replayed, carries its first id.

The customer's credentials here are Backhaul's own SCRAM-SHA-512 user on the gateway listener
(deploy/local/kafka.sh). SASL PLAIN, the AZURE_EVENT_HUBS channel end to end and a KAFKA callback
with PLAIN: test_channel_sasl_plain.py.
"""
from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections import defaultdict

import orjson
import pytest

from backhaul.kafka import make_admin
from backhaul.settings import settings
from program.demo.seed import stable_id
from program.supervised import free_port
from simulator.network import simulate
from tests.conftest import ROOT, frame, publish_frames, read_topic, wait_until

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


def headers_of(record) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


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


class Proxy:
    """A TCP forwarder standing in for the customer's bootstrap address: closed (connection refused),
    then opened."""

    def __init__(self, target: str) -> None:
        self.port = free_port()
        self.host, port = target.rsplit(":", 1)
        self.target_port = int(port)
        self.server: asyncio.AbstractServer | None = None

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


async def test_an_unreachable_cluster_then_back_retries_deliver_and_cbstatus_has_the_client_error(
        pipeline, isolated):
    customer = f"{isolated.prefix}cust"
    await create_topic(customer)
    proxy = Proxy(gateway())
    env = {"BACKHAUL_RETRY_SCHEDULE_S": "1,1,1,1,1", "BACKHAUL_RETRY_JITTER": "0", "BACKHAUL_CALLBACK_TIMEOUT_S": "3",
           "BACKHAUL_BREAKER_FAILURES": "100"}
    pipe = await pipeline([kafka_callback(f"127.0.0.1:{proxy.port}", customer)], env=env)
    device = pipe.devices[0]
    try:
        await publish_frames([frame(device, 7, station=pipe.stations[0])])
        failed = await pipe.wait_rows("SELECT status, error_class, info FROM callback_attempts "
                                      "WHERE status = 600", 1, timeout=10)
        print("attempt while the cluster is away:", failed[0]["info"])
        assert failed[0]["error_class"] == "connect"
        assert failed[0]["info"].startswith(f"KafkaConnectionError: Unable to bootstrap from 127.0.0.1:{proxy.port}: ")
        assert "Connect call failed" in failed[0]["info"], "the client's own words"
        await proxy.open()
        [record] = await records_of(customer, 1)
        assert orjson.loads(record.value)["seq"] == 7
        rows = await pipe.wait_rows("SELECT attempt, status FROM callback_attempts WHERE status = 200", 1)
        assert rows[0]["attempt"] >= 2
        message_ids = {headers_of(record)["message-id"]}
        assert len(message_ids) == 1
    finally:
        await proxy.close()


async def test_kill_9_of_the_delivery_worker_every_message_arrives_repeats_carry_the_same_id(
        pipeline, isolated, workers):
    customer = f"{isolated.prefix}cust"
    await create_topic(customer, partitions=4)
    # The cluster's rate paced (100/s) so that the kill finds hundreds of deliveries held by the worker.
    env = {"BACKHAUL_RETRY_CLAIM_S": "3", "BACKHAUL_ENDPOINT_RATE_PER_S": "100", "BACKHAUL_ENDPOINT_BURST": "10",
           "BACKHAUL_ENDPOINT_QUEUE": "1000"}
    pipe = await pipeline([kafka_callback(gateway(), customer)], roles=("relay,ingest,router,store", "delivery"),
                          env=env, stations=3, devices=100)
    sent = await simulate(pipe.network, messages_per_device=5, rate=0, duration=None, max_stations=3,
                          progress=False)
    assert sent["messages"] == 500

    async def some_arrived() -> bool:
        return len(await read_topic(customer, timeout=0.5)) >= 50
    await wait_until(some_arrived, 15, "50 records before the crash")
    in_flight = await pipe.workers[1].metrics()
    pipe.workers[1].kill9()
    before = len(await read_topic(customer, timeout=0.5))
    gauge = next(line for line in in_flight.splitlines() if line.startswith("backhaul_deliveries_in_flight "))
    print(f"killed with {before} records in the customer's topic; {gauge}")
    assert float(gauge.split()[1]) > 0 and before < 500, "killed with deliveries in flight"
    restarted = workers("delivery", isolated, **env)
    await restarted.wait_ready()

    ids: dict[tuple[str, int], set[str]] = defaultdict(set)
    records: list = []

    async def every_message() -> bool:
        records[:] = await read_topic(customer, timeout=1.0)
        ids.clear()
        for r in records:
            ids[(r.key.decode(), orjson.loads(r.value)["seq"])].add(headers_of(r)["message-id"])
        return len(ids) >= 500
    await wait_until(every_message, 15, f"all 500 messages\n{restarted.log_tail()}")
    print(f"{len(records)} records for {len(ids)} messages: {len(records) - len(ids)} repeats")
    assert len(ids) == 500, "every message arrived"
    assert all(len(v) == 1 for v in ids.values()), "a repeat carries the same message-id"


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
