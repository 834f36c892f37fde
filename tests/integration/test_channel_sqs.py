"""The SQS channel on the real stack with moto's server (tests/moto_server.py): frames -> messages read back
with aiobotocore's ReceiveMessage (body rendered, attributes message-id and callback-type; a FIFO queue's
group = the device and deduplication id = the message id); the service down then back (retries deliver,
attempts in cbStatus with botocore's words); kill -9 of the delivery worker mid-flight (every message arrives,
repeats carry the same message-id); a missing queue and refused credentials give the service's error text;
the secret key is sealed at rest."""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import orjson
import pytest

from simulator.network import simulate
from tests.conftest import frame, publish_frames, wait_until
from tests.moto_server import (
    ACCOUNT,
    PACED_ENV,
    RETRY_ENV,
    SECRET_ACCESS_KEY,
    MotoProcess,
    aws_callback,
    aws_name,
    kill_9_mid_flight,
    moto,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.integration


def sqs_callback(cb_id: str, url: str, queue_url: str, **settings) -> dict:
    return aws_callback(cb_id, "SQS", url, queueUrl=queue_url, **settings)


async def create_queue(moto, name: str) -> str:
    async with moto.client("sqs") as sqs:
        attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
        return (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]


async def receive(moto, queue_url: str, expect: int, timeout: float = 15.0) -> list[dict]:
    """Every message of the queue (each received once: they stay invisible for the test), waiting for `expect`."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    async with moto.client("sqs") as sqs:
        while len(got) < expect and time.monotonic() < deadline:
            answer = await sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                               VisibilityTimeout=600, MessageAttributeNames=["All"],
                                               MessageSystemAttributeNames=["All"])
            got += answer.get("Messages") or []
            if not answer.get("Messages"):
                await asyncio.sleep(0.2)
    return got


def attribute(message: dict, name: str) -> str:
    return message["MessageAttributes"][name]["StringValue"]


async def test_frames_become_messages_with_attributes_and_fifo_group_and_deduplication(pipeline, isolated, moto):
    plain = await create_queue(moto, f"{aws_name(isolated)}plain")
    fifo = await create_queue(moto, f"{aws_name(isolated)}ordered.fifo")
    missing = f"http://127.0.0.1:{moto.port}/{ACCOUNT}/{aws_name(isolated)}nosuch"
    pipe = await pipeline([sqs_callback("sqs", moto.url, plain), sqs_callback("fifo", moto.url, fifo),
                           sqs_callback("missing", moto.url, missing)], env={"BACKHAUL_CALLBACK_TIMEOUT_S": "3"})
    device = pipe.devices[0]
    await publish_frames([frame(device, seq, station=pipe.stations[0], data=f"0{seq}ab") for seq in (1, 2, 3)])

    messages = await receive(moto, plain, 3)
    assert sorted(orjson.loads(m["Body"])["seq"] for m in messages) == [1, 2, 3]
    for m in messages:
        body = orjson.loads(m["Body"])
        assert body == {"device": device, "seq": body["seq"], "data": f"0{body['seq']}ab"}, "variables rendered"
        assert attribute(m, "callback-type") == "DATA_UPLINK"
        assert attribute(m, "message-id").endswith("/sqs"), "the delivery id: <record id>/<callback id>"
    assert len({attribute(m, "message-id") for m in messages}) == 3
    ordered = await receive(moto, fifo, 3)
    assert [orjson.loads(m["Body"])["seq"] for m in ordered] == [1, 2, 3], "one group per device: in order"
    for m in ordered:
        assert m["Attributes"]["MessageGroupId"] == device
        assert m["Attributes"]["MessageDeduplicationId"] == attribute(m, "message-id")
    rows = await pipe.wait_rows("SELECT status, error_class, answer FROM callback_attempts "
                                "WHERE status = 200 AND callback_id = 'sqs'", 3)
    assert all(r["answer"].startswith("MessageId ") and r["error_class"] == "ok" for r in rows)
    [failed, *_] = await pipe.wait_rows("SELECT status, error_class, info FROM callback_attempts "
                                        "WHERE callback_id = 'missing' AND status IS NOT NULL", 1, timeout=10)
    print("a missing queue:", failed["info"])
    assert (failed["status"], failed["error_class"]) == (600, "http_4xx")
    assert failed["info"] == "AWS AWS.SimpleQueueService.NonExistentQueue: The specified queue does not exist."
    assert SECRET_ACCESS_KEY not in str(await pipe.fetch("SELECT * FROM callbacks")), "sealed at rest"


async def test_the_service_down_then_back_retries_deliver_and_cbstatus_has_the_client_error(pipeline, isolated, moto):
    queue = await create_queue(moto, f"{aws_name(isolated)}q")
    pipe = await pipeline([sqs_callback("sqs", moto.url, queue)], env=RETRY_ENV)
    moto.stop()
    try:
        await publish_frames([frame(pipe.devices[0], 7, station=pipe.stations[0])])
        [failed, *_] = await pipe.wait_rows("SELECT status, error_class, info FROM callback_attempts "
                                            "WHERE status = 600", 1, timeout=15)
        print("attempt while SQS is away:", failed["info"])
        assert failed["error_class"] == "connect"
        assert failed["info"] == f'Could not connect to the endpoint URL: "{moto.url}/"', "botocore's words"
    finally:
        moto.start()
    [message] = await receive(moto, queue, 1)
    assert orjson.loads(message["Body"])["seq"] == 7
    [ok] = await pipe.wait_rows("SELECT attempt FROM callback_attempts WHERE status = 200", 1)
    assert ok["attempt"] >= 2


async def test_refused_credentials_give_the_services_error_and_no_secret(pipeline, isolated):
    strict = MotoProcess(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}).start()  # moto's IAM: our key is unknown
    try:
        queue = f"{strict.url}/{ACCOUNT}/{aws_name(isolated)}q"
        pipe = await pipeline([sqs_callback("sqs", strict.url, queue)],
                              env={"BACKHAUL_RETRY_SCHEDULE_S": "30", "BACKHAUL_RETRY_JITTER": "0"})
        await publish_frames([frame(pipe.devices[0], 3, station=pipe.stations[0])])
        [row] = await pipe.wait_rows("SELECT status, error_class, info FROM callback_attempts WHERE status = 600", 1,
                                     timeout=15)
    finally:
        strict.stop()
    print("refused credentials:", row["info"])
    assert row["info"] == "AWS InvalidClientTokenId: The security token included in the request is invalid."
    assert row["error_class"] == "http_4xx"


async def test_kill_9_of_the_delivery_worker_every_message_arrives_repeats_carry_the_same_id(
        pipeline, isolated, workers, moto):
    queue = await create_queue(moto, f"{aws_name(isolated)}q")
    env = {**PACED_ENV, "BACKHAUL_ENDPOINT_RATE_PER_S": "40"}  # 7.5 s for the 300: the kill finds some in flight
    pipe = await pipeline([sqs_callback("sqs", moto.url, queue)], roles=("relay,ingest,router,store", "delivery"),
                          env=env, stations=3, devices=60)
    sent = await simulate(pipe.network, messages_per_device=5, rate=0, duration=None, max_stations=3, progress=False)
    assert sent["messages"] == 300
    got: list[dict] = []

    async def some_arrived() -> bool:  # counted, not received: receiving is slow beside a busy stack
        async with moto.client("sqs") as sqs:
            answer = await sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
        return int(answer["Attributes"]["ApproximateNumberOfMessages"]) >= 30
    await wait_until(some_arrived, 20, "30 messages before the crash")
    in_flight = await kill_9_mid_flight(pipe.workers[1])
    print(f"killed with {in_flight:.0f} deliveries in flight")
    restarted = workers("delivery", isolated, **env)
    await restarted.wait_ready()

    ids: dict[tuple[str, int], set[str]] = defaultdict(set)

    async def every_message() -> bool:
        got.extend(await receive(moto, queue, 1, timeout=0.5))
        ids.clear()
        for m in got:
            body = orjson.loads(m["Body"])
            ids[(body["device"], body["seq"])].add(attribute(m, "message-id"))
        return len(ids) >= 300
    await wait_until(every_message, 60, f"all 300 messages\n{restarted.log_tail()}")
    print(f"{len(got)} messages for {len(ids)} uplinks: {len(got) - len(ids)} repeats")
    assert len(ids) == 300, "every message arrived"
    assert all(len(v) == 1 for v in ids.values()), "a repeat carries the same message-id"
