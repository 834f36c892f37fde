"""The KINESIS channel on the real stack with moto's server (tests/moto_server.py): frames -> records read back
with aiobotocore's GetShardIterator/GetRecords (data = the body rendered, partition key = the device or its
template rendered, a stream by ARN; `{deliveryId}` in the body is the attempt's delivery id); a missing stream
gives the service's error text; the service down then back (retries deliver, attempts in cbStatus); kill -9 of
the delivery worker mid-flight (every message arrives; a repeat is the same record again, with the same
`{deliveryId}`: Kinesis records have no attributes, the body carries the id receivers de-duplicate on)."""
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
    BODY,
    PACED_ENV,
    REGION,
    RETRY_ENV,
    SECRET_ACCESS_KEY,
    TYPE_ID,
    aws_callback,
    aws_name,
    kill_9_mid_flight,
    moto,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.integration
# The shared AWS body plus the delivery's stable id, which Kinesis can carry only in the body.
KINESIS_BODY = BODY.removesuffix("}") + ', "id": "{deliveryId}"}'


def kinesis_callback(cb_id: str, url: str, **settings) -> dict:
    return {**aws_callback(cb_id, "KINESIS", url, **settings), "body_template": KINESIS_BODY}


async def create_stream(moto, name: str, shards: int = 2) -> None:
    async with moto.client("kinesis") as kinesis:
        await kinesis.create_stream(StreamName=name, ShardCount=shards)


async def records(moto, stream: str, expect: int, timeout: float = 15.0) -> list[dict]:
    """Every record of the stream (all shards, from the start), waiting for `expect`."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    async with moto.client("kinesis") as kinesis:
        while True:  # read at least once: on a busy machine, opening the client can take the whole timeout
            got = []
            for shard in (await kinesis.list_shards(StreamName=stream))["Shards"]:
                iterator = (await kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                                             ShardIteratorType="TRIM_HORIZON"))["ShardIterator"]
                got += (await kinesis.get_records(ShardIterator=iterator, Limit=10000))["Records"]
            if len(got) >= expect or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
    return got


async def test_frames_become_records_with_the_partition_key_and_body_rendered(pipeline, isolated, moto):
    stream, keyed = f"{aws_name(isolated)}s", f"{aws_name(isolated)}k"
    await create_stream(moto, stream)
    await create_stream(moto, keyed)
    arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{keyed}"
    pipe = await pipeline([kinesis_callback("kinesis", moto.url, streamName=stream),
                           kinesis_callback("keyed", moto.url, streamArn=arn, partitionKey="{deviceTypeId}-{device}"),
                           kinesis_callback("missing", moto.url, streamName=f"{aws_name(isolated)}nosuch")],
                          env={"BACKHAUL_CALLBACK_TIMEOUT_S": "3"})
    device = pipe.devices[0]
    await publish_frames([frame(device, seq, station=pipe.stations[0], data=f"0{seq}ab") for seq in (1, 2, 3)])

    got = await records(moto, stream, 3)
    assert sorted(orjson.loads(r["Data"])["seq"] for r in got) == [1, 2, 3]
    for r in got:
        body = orjson.loads(r["Data"])
        assert body == {"device": device, "seq": body["seq"], "data": f"0{body['seq']}ab",
                        "id": body["id"]}, "variables rendered"
        assert r["PartitionKey"] == device, "the default key: the device"
    by_arn = await records(moto, keyed, 3)
    assert {r["PartitionKey"] for r in by_arn} == {f"{TYPE_ID}-{device}"}
    rows = await pipe.wait_rows("SELECT delivery_id, answer FROM callback_attempts "
                                "WHERE status = 200 AND callback_id = 'kinesis'", 3)
    assert all(r["answer"].startswith("shardId-") and "@" in r["answer"] for r in rows), "the record's place"
    assert sorted(orjson.loads(r["Data"])["id"] for r in got) == sorted(r["delivery_id"] for r in rows)
    assert all(r["delivery_id"].endswith("/kinesis") for r in rows), "the id is the delivery's, per callback"
    [failed, *_] = await pipe.wait_rows("SELECT status, error_class, info FROM callback_attempts "
                                        "WHERE callback_id = 'missing' AND status IS NOT NULL", 1, timeout=10)
    print("a missing stream:", failed["info"])
    assert (failed["status"], failed["error_class"]) == (600, "http_4xx")
    assert failed["info"] == (f"AWS ResourceNotFoundException: Stream {aws_name(isolated)}nosuch under account "
                              f"{ACCOUNT} not found.")
    assert SECRET_ACCESS_KEY not in str(await pipe.fetch("SELECT * FROM callbacks")), "sealed at rest"


async def test_the_service_down_then_back_retries_deliver(pipeline, isolated, moto):
    stream = aws_name(isolated)
    await create_stream(moto, stream)
    pipe = await pipeline([kinesis_callback("kinesis", moto.url, streamName=stream)], env=RETRY_ENV)
    moto.stop()
    try:
        await publish_frames([frame(pipe.devices[0], 7, station=pipe.stations[0])])
        [failed, *_] = await pipe.wait_rows("SELECT error_class, info FROM callback_attempts WHERE status = 600", 1,
                                            timeout=15)
        assert (failed["error_class"], failed["info"]) == ("connect", f'Could not connect to the endpoint URL: "{moto.url}/"')
    finally:
        moto.start()
    [record] = await records(moto, stream, 1)
    assert orjson.loads(record["Data"])["seq"] == 7
    [ok] = await pipe.wait_rows("SELECT attempt FROM callback_attempts WHERE status = 200", 1)
    assert ok["attempt"] >= 2


async def test_kill_9_of_the_delivery_worker_every_message_arrives(pipeline, isolated, workers, moto):
    stream = aws_name(isolated)
    await create_stream(moto, stream, shards=4)
    pipe = await pipeline([kinesis_callback("kinesis", moto.url, streamName=stream)],
                          roles=("relay,ingest,router,store", "delivery"), env=PACED_ENV, stations=3, devices=60)
    sent = await simulate(pipe.network, messages_per_device=5, rate=0, duration=None, max_stations=3, progress=False)
    assert sent["messages"] == 300

    async def some_arrived() -> bool:
        return len(await records(moto, stream, 30, timeout=0.5)) >= 30
    await wait_until(some_arrived, 20, "30 records before the crash")
    assert await kill_9_mid_flight(pipe.workers[1]) > 0
    restarted = workers("delivery", isolated, **PACED_ENV)
    await restarted.wait_ready()
    bodies: dict[tuple[str, int], list[dict]] = defaultdict(list)

    async def every_message() -> bool:
        bodies.clear()
        for r in await records(moto, stream, 300, timeout=0.5):
            body = orjson.loads(r["Data"])
            bodies[(body["device"], body["seq"])].append(body)
        return len(bodies) >= 300
    await wait_until(every_message, 30, f"all 300 messages\n{restarted.log_tail()}")
    print(f"{sum(map(len, bodies.values()))} records for {len(bodies)} uplinks")
    assert len(bodies) == 300, "every message arrived"
    assert all(all(b == v[0] for b in v) for v in bodies.values()), "a repeat is the same record, id included"
    assert len({v[0]["id"] for v in bodies.values()}) == 300, "one id per message"
