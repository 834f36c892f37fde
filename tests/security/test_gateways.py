"""Gateways authenticate: SASL/SCRAM per gateway on their own listener, ACLs that allow producing frames only,
and only registered, enabled stations are heard."""
from __future__ import annotations

import subprocess

import orjson
import pytest
from aiokafka.errors import KafkaError

from backhaul import db
from backhaul.kafka import Out, make_consumer, make_gateway_producer, make_producer, send_all
from backhaul.settings import PROJECT_ROOT, settings
from backhaul.topics import topic
from schemas.topics import FRAMES, FRAMES_REJECTED, MESSAGES
from tests.conftest import frame, read_topic

pytestmark = pytest.mark.integration
KAFKA_SH = PROJECT_ROOT / "deploy/local/kafka.sh"


def kafka_sh(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(KAFKA_SH), *args], env=env, capture_output=True, text=True, timeout=180)


async def _produce(producer, name: str, value: dict, key: bytes = b"5AFE01") -> None:
    await producer.start()
    try:
        await send_all(producer, [Out(name, key, orjson.dumps(value))])
    finally:
        await producer.stop()


async def test_a_gateway_produces_frames_and_nothing_else(pipeline, gateway, receiver):
    name, password = gateway.name, gateway.password
    p = await pipeline([{"callback_subtype": 0, "url": f"{receiver.url}/up?s={{station}}", "http_method": "GET"}],
                       roles=("relay,ingest,router,delivery",), stations=3, devices=1)
    enabled, disabled, planned = p.stations
    device = p.devices[0]
    conn = await db.connect()
    await conn.execute("UPDATE base_stations SET state = 'disabled' WHERE id = $1", disabled)
    await conn.execute("UPDATE base_stations SET state = 'planned' WHERE id = $1", planned)
    await conn.close()
    p.config_records += 2
    await p.wait_config(p.config_records)

    # Frames go in through the gateway listener with the gateway's own credentials.
    for seq, station in ((1, enabled), (2, disabled), (3, planned), (4, "7B7B")):
        await _produce(make_gateway_producer(name, password), topic(FRAMES), frame(device, seq, station=station),
                       key=device.encode())
    got = await receiver.wait_for(1, timeout=20)
    assert [r.query["s"] for r in got] == [enabled]
    rejected = [orjson.loads(r.value) for r in await read_topic(topic(FRAMES_REJECTED), expect=3, timeout=20)]
    assert sorted(r["reason"] for r in rejected) == ["station.disabled", "station.disabled", "station.unknown"]

    # Anything else is refused by the broker's ACLs.
    with pytest.raises(KafkaError):
        await _produce(make_gateway_producer(name, password, request_timeout_ms=5000), topic(MESSAGES),
                       {"forged": True})
    consumer = make_consumer(topic(FRAMES), group=None, bootstrap_servers=settings().kafka_gateway,
                             sasl_plain_username=name, sasl_plain_password=password,
                             security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512")
    with pytest.raises(KafkaError):
        await consumer.start()
        await consumer.getone()
    await consumer.stop()
    # Wrong password, and no authentication at all, do not get in.
    with pytest.raises(KafkaError):
        await _produce(make_gateway_producer(name, "not-the-password", request_timeout_ms=5000), topic(FRAMES),
                       frame("5AFE01", 9, station="6A01"))
    with pytest.raises(KafkaError):
        await _produce(make_producer(bootstrap_servers=settings().kafka_gateway, security_protocol="PLAINTEXT",
                                     request_timeout_ms=5000), topic(FRAMES), frame("5AFE01", 9, station="6A01"))
    assert len(receiver.requests) == 1


async def test_a_removed_gateway_is_locked_out(isolated, gateway):
    name, password = gateway.name, gateway.password
    await _produce(make_gateway_producer(name, password), topic(FRAMES), frame("5AFE01", 1, station="6A01"))
    result = kafka_sh("remove-gateway", name, env=isolated.subprocess_env())
    assert result.returncode == 0, result.stderr
    with pytest.raises(KafkaError):
        await _produce(make_gateway_producer(name, password, request_timeout_ms=5000), topic(FRAMES),
                       frame("5AFE01", 2, station="6A01"))
