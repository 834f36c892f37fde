"""Deliveries per second through the AWS channels (SQS, KINESIS, AWS_IOT) to moto's server, beside the raw
aiobotocore client against the same server in the same run.

    python -m bench.aws_rate [--channel SQS|KINESIS|AWS_IOT ...] [--n N] [--concurrency C]

moto's server (`python -m moto.server`, a process of its own: tests/moto_server.py) stands in for AWS. For each
channel, in a private prefix and database (`bench.sandbox`), a `relay,ingest,router` worker turns simulated
frames into N rendered deliveries waiting on the `deliveries` topic; then a `delivery` worker is started alone
and timed from the moment it is ready until the service holds N messages: SQS counted by the queue's
ApproximateNumberOfMessages, Kinesis by reading the stream's shards; moto keeps what IoT Core is published in
its process' memory only, so AWS_IOT is counted by the successful attempts the worker records in
`delivery-results` (a failed one stops the bench). The raw client then sends N messages of the same size with C
in flight: SQS and Kinesis in batches as large as the service and C allow (10 messages; C records), IoT
one Publish per message. The endpoint's rate limit and queue are lifted, its concurrency is C. moto's
server is slow (Python, one process, every request parsed and answered by werkzeug): the figures are
moto's ceiling more than AWS's, and the comparison (channel against raw client, on the same server) is
what they show.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from backhaul import db
from backhaul.kafka import make_consumer
from backhaul.topics import topic
from bench.delivery_rate import rendering, wait_for, worker_rate
from bench.report import print_rates
from bench.sandbox import sandbox
from program.demo.seed import seed_network
from schemas.delivery_results import decode_delivery_result, is_sending
from schemas.topics import DELIVERY_RESULTS
from simulator.network import build_network, simulate
from tests.moto_server import MotoProcess, aws_settings

BODY = '{"device": "{device}", "seq": {seqNumber}, "data": "{data}", "time": {time}}'
CHANNELS = ("SQS", "KINESIS", "AWS_IOT")
SHARDS = 4
Counter = Callable[[], Awaitable[int]]


async def sqs_counter(sqs: Any, queue_url: str) -> Counter:
    async def count() -> int:
        answer = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(answer["Attributes"]["ApproximateNumberOfMessages"])
    return count


async def kinesis_counter(kinesis: Any, stream: str) -> Counter:
    """Records read so far from every shard (each shard's iterator kept between calls)."""
    shards = (await kinesis.list_shards(StreamName=stream))["Shards"]
    iterators = [(await kinesis.get_shard_iterator(StreamName=stream, ShardId=s["ShardId"],
                                                   ShardIteratorType="TRIM_HORIZON"))["ShardIterator"] for s in shards]
    seen = 0

    async def count() -> int:
        nonlocal seen
        for i, iterator in enumerate(iterators):
            answer = await kinesis.get_records(ShardIterator=iterator, Limit=10000)
            seen += len(answer["Records"])
            iterators[i] = answer["NextShardIterator"]
        return seen
    return count


def successes_counter(consumer: Any) -> Counter:
    """Successful attempts the delivery worker recorded so far (its "done" delivery results with status 200);
    a failed one stops the bench: the rate would not be the channel's."""
    seen = 0

    async def count() -> int:
        nonlocal seen
        for records in (await consumer.getmany(timeout_ms=100)).values():
            for r in records:
                result = decode_delivery_result(r.value)
                if is_sending(result):
                    continue
                if result.get("errorClass") != "ok":
                    raise RuntimeError(f"an AWS_IOT attempt failed: {result.get('info')}")
                seen += 1
        return seen
    return count


async def raw_rate(channel: str, client: Any, where: str, n: int, concurrency: int, size: int) -> float:
    """Messages per second the raw client sends (full batches where the service batches), C messages in flight."""
    data = "x" * size
    batch = min(concurrency, {"SQS": 10, "KINESIS": 500, "AWS_IOT": 1}[channel])  # at most C in flight
    calls = [min(batch, n - i) for i in range(0, n, batch)]

    async def call(count: int) -> None:
        if channel == "SQS":
            answer = await client.send_message_batch(QueueUrl=where, Entries=[
                {"Id": str(i), "MessageBody": data, "MessageAttributes": {
                    "message-id": {"DataType": "String", "StringValue": "0" * 40}}} for i in range(count)])
            assert not answer.get("Failed"), answer["Failed"]
        elif channel == "KINESIS":
            answer = await client.put_records(StreamName=where, Records=[
                {"Data": data.encode(), "PartitionKey": f"{i:08X}"} for i in range(count)])
            assert not answer.get("FailedRecordCount"), answer
        else:
            await client.publish(topic=where, qos=1, payload=data.encode(), userProperties=[{"message-id": "0" * 40}])

    async def sender() -> None:
        while calls:
            await call(calls.pop())
    started = time.monotonic()
    await asyncio.gather(*(sender() for _ in range(max(1, concurrency // batch))))
    return n / (time.monotonic() - started)


async def run_channel(channel: str, moto: MotoProcess, n: int, concurrency: int) -> dict[str, float]:
    limits = {"BACKHAUL_ENDPOINT_CONCURRENCY": str(concurrency), "BACKHAUL_ENDPOINT_RATE_PER_S": "1000000",
              "BACKHAUL_ENDPOINT_BURST": "1000000", "BACKHAUL_ENDPOINT_QUEUE": "1000000",
              "BACKHAUL_LOG_LEVEL": "WARNING"}
    logs = Path(tempfile.mkdtemp(prefix=f"bench-{channel.lower()}-"))
    service = {"SQS": "sqs", "KINESIS": "kinesis", "AWS_IOT": "iot-data"}[channel]
    async with sandbox(limits) as box, moto.client(service) as client:
        name = box.prefix.replace(".", "-").strip("-") or "bench"
        if channel == "SQS":
            where = (await client.create_queue(QueueName=name))["QueueUrl"]
            raw_where = (await client.create_queue(QueueName=f"{name}-raw"))["QueueUrl"]
            own = {"queueUrl": where}
        elif channel == "KINESIS":
            where, raw_where = name, f"{name}-raw"
            for stream in (where, raw_where):
                await client.create_stream(StreamName=stream, ShardCount=SHARDS)
            own = {"streamName": where}
        else:
            where, raw_where = f"{name}/{{device}}", f"{name}-raw/x"
            own = {"topic": where}
        devices = 500
        network = build_network(2, devices, seed=5)
        conn = await db.connect()
        try:
            await seed_network(conn, network, name=channel.lower(), callbacks=[{
                "channel": channel, "content_type": "application/json", "body_template": BODY,
                "channel_settings": aws_settings(moto.url, **own)}])
        finally:
            await conn.close()
        env = {**os.environ, **box.env}
        results = make_consumer(topic(DELIVERY_RESULTS), group=None)
        await results.start()
        try:
            async with rendering(box.env, logs, 3 + devices) as queued:
                await simulate(network, messages_per_device=n // devices, rate=0, duration=None, max_stations=1,
                               progress=False)
                await wait_for(queued, n, 120, f"{channel} deliveries rendered")
                if channel == "SQS":
                    count = await sqs_counter(client, where)
                elif channel == "KINESIS":
                    count = await kinesis_counter(client, where)
                else:
                    count = successes_counter(results)
                since = await count()

                async def arrived() -> int:
                    return await count() - since
                figures = {f"{channel} channel": await worker_rate(env, logs / "delivery.log", arrived, n, 300,
                                                                   f"{channel} messages")}
        finally:
            await results.stop()
        size = len(BODY) + 20  # about a rendered body
        figures[f"raw aiobotocore ({service})"] = await raw_rate(channel, client, raw_where, n, concurrency, size)
        return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--channel", choices=CHANNELS, action="append", help="one channel (repeatable); default all")
    p.add_argument("--n", type=int, default=2000, help="messages per channel (a multiple of 500)")
    p.add_argument("--concurrency", type=int, default=64, help="messages in flight (the endpoint's concurrency)")
    args = p.parse_args(argv)
    moto = MotoProcess().start()
    figures: dict[str, float] = {}
    try:
        for channel in args.channel or CHANNELS:
            figures.update(asyncio.run(run_channel(channel, moto, args.n, args.concurrency)))
    finally:
        moto.stop()
    print_rates(figures, args.n, f"moto's server on 127.0.0.1, one process; {args.concurrency} messages in flight")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
