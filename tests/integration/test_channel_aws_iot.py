"""The AWS_IOT channel on the real stack with moto's server in this process (tests/moto_server.py: moto keeps
what its IoT data plane was sent, which the fixture reads with the request's MQTT 5 user properties): frames ->
publishes with the topic and body rendered, QoS, content type and the `message-id` user property; the service
down then back (retries deliver, attempts in cbStatus); kill -9 of the delivery worker mid-flight (every
message arrives, repeats carry the same message-id); an endpoint the destination rule refuses is never called."""
from __future__ import annotations

from collections import defaultdict

import orjson
import pytest

from simulator.network import simulate
from tests.conftest import frame, publish_frames, wait_until
from tests.moto_server import (
    PACED_ENV,
    RETRY_ENV,
    SECRET_ACCESS_KEY,
    TYPE_ID,
    Published,
    aws_callback,
    aws_name,
    kill_9_mid_flight,
    moto,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.integration


def iot_callback(cb_id: str, url: str, topic: str, **settings) -> dict:
    return aws_callback(cb_id, "AWS_IOT", url, topic=topic, **settings)


def message_id(p: Published) -> str:
    [properties] = p.user_properties
    return properties["message-id"]


async def published(moto, prefix: str, expect: int, timeout: float = 15.0) -> list[Published]:
    async def enough() -> bool:
        return len(moto.published(prefix)) >= expect
    await wait_until(enough, timeout, f"{expect} publishes on {prefix}")
    return moto.published(prefix)


async def test_frames_become_publishes_with_topic_body_qos_and_the_message_id(pipeline, isolated, moto):
    prefix = aws_name(isolated)
    pipe = await pipeline([iot_callback("iot", moto.url, prefix + "/{deviceTypeId}/{device}"),
                           iot_callback("qos0", moto.url, prefix + "-q0/{device}/{seqNumber}", qos=0)],
                          env={"BACKHAUL_CALLBACK_TIMEOUT_S": "3"})
    device = pipe.devices[0]
    await publish_frames([frame(device, seq, station=pipe.stations[0], data=f"0{seq}ab") for seq in (1, 2, 3)])

    got = await published(moto, prefix + "/", 3)
    assert {p.topic for p in got} == {f"{prefix}/{TYPE_ID}/{device}"}, "the topic rendered"
    assert sorted(orjson.loads(p.payload)["seq"] for p in got) == [1, 2, 3]
    for p in got:
        body = orjson.loads(p.payload)
        assert body == {"device": device, "seq": body["seq"], "data": f"0{body['seq']}ab"}, "variables rendered"
        assert (p.qos, p.content_type) == (1, "application/json")
        assert message_id(p).endswith("/iot"), "the delivery id: <record id>/<callback id>"
    assert len({message_id(p) for p in got}) == 3
    quick = await published(moto, prefix + "-q0/", 3)
    assert {p.topic for p in quick} == {f"{prefix}-q0/{device}/{seq}" for seq in (1, 2, 3)}
    assert {p.qos for p in quick} == {0}
    rows = await pipe.wait_rows("SELECT status, error_class, answer FROM callback_attempts WHERE status = 200", 6)
    assert {(r["error_class"], r["answer"]) for r in rows} == {("ok", "published")}
    assert SECRET_ACCESS_KEY not in str(await pipe.fetch("SELECT * FROM callbacks")), "sealed at rest"


async def test_the_service_down_then_back_retries_deliver(pipeline, isolated, moto):
    prefix = aws_name(isolated)
    pipe = await pipeline([iot_callback("iot", moto.url, prefix + "/{device}")], env=RETRY_ENV)
    moto.stop()
    try:
        await publish_frames([frame(pipe.devices[0], 7, station=pipe.stations[0])])
        [failed, *_] = await pipe.wait_rows("SELECT error_class, info FROM callback_attempts WHERE status = 600", 1,
                                            timeout=15)
        print("attempt while IoT Core is away:", failed["info"])
        assert failed["error_class"] == "connect"
        assert failed["info"].startswith(f'Could not connect to the endpoint URL: "{moto.url}/topics/{prefix}')
    finally:
        moto.start()
    [p] = await published(moto, prefix + "/", 1)
    assert orjson.loads(p.payload)["seq"] == 7
    [ok] = await pipe.wait_rows("SELECT attempt FROM callback_attempts WHERE status = 200", 1)
    assert ok["attempt"] >= 2


async def test_an_endpoint_the_destination_rule_refuses_is_never_called(pipeline, isolated, moto):
    # The workers allow loopback (tests.conftest): 127.0.0.2 is loopback too; a private address is not allowed.
    pipe = await pipeline([iot_callback("iot", "http://10.1.2.3:443", "t/{device}")],
                          env={"BACKHAUL_RETRY_SCHEDULE_S": "30", "BACKHAUL_RETRY_JITTER": "0"})
    await publish_frames([frame(pipe.devices[0], 5, station=pipe.stations[0])])
    [row] = await pipe.wait_rows("SELECT error_class, info FROM callback_attempts WHERE status = 600", 1, timeout=15)
    print("refused endpoint:", row["info"])
    assert row["error_class"] == "destination"
    assert row["info"].startswith("destination refused: must be https")


async def test_kill_9_of_the_delivery_worker_every_message_arrives_repeats_carry_the_same_id(
        pipeline, isolated, workers, moto):
    prefix = aws_name(isolated)
    pipe = await pipeline([iot_callback("iot", moto.url, prefix + "/{device}")],
                          roles=("relay,ingest,router,store", "delivery"), env=PACED_ENV, stations=3, devices=60)
    sent = await simulate(pipe.network, messages_per_device=5, rate=0, duration=None, max_stations=3, progress=False)
    assert sent["messages"] == 300
    await published(moto, prefix + "/", 30, timeout=20)
    assert await kill_9_mid_flight(pipe.workers[1]) > 0
    restarted = workers("delivery", isolated, **PACED_ENV)
    await restarted.wait_ready()
    ids: dict[tuple[str, int], set[str]] = defaultdict(set)

    async def every_message() -> bool:
        ids.clear()
        for p in moto.published(prefix + "/"):
            body = orjson.loads(p.payload)
            ids[(body["device"], body["seq"])].add(message_id(p))
        return len(ids) >= 300
    await wait_until(every_message, 30, f"all 300 messages\n{restarted.log_tail()}")
    print(f"{len(moto.published(prefix + '/'))} publishes for {len(ids)} uplinks")
    assert len(ids) == 300, "every message arrived"
    assert all(len(v) == 1 for v in ids.values()), "a repeat carries the same message-id"
