"""Frames/s through the ingest stage alone, beside a raw aiokafka consume-produce loop.

    python -m bench.ingest_rate [--devices 5000] [--messages 40000]

A backlog of frames is written to a private `frames` topic first; then one
`backhaul worker --roles ingest` drains it. Its rate is taken from the
broker's timestamps of its first and last output records, so start-up does
not count. The ceiling, in the same run, reads the same backlog with
`getmany` and writes every record to another topic, acknowledged per batch,
with no processing: what aiokafka itself allows on this machine.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import TopicPartition

from backhaul import db
from backhaul.kafka import make_consumer, make_producer
from backhaul.settings import settings
from backhaul.topics import topic
from bench.ceilings import CEILING_TOPIC, create_ceiling_topic
from bench.sandbox import sandbox
from program.demo.seed import seed_network
from program.supervised import WorkerProcess
from schemas.frames import encode_frame
from schemas.topics import FRAMES, INGEST_STATE, MESSAGES
from simulator.network import build_network, message_frames


async def publish_backlog(frames: list[bytes], keys: list[bytes]) -> float:
    producer = make_producer(linger_ms=20)
    await producer.start()
    try:
        started = time.monotonic()
        futures = [await producer.send(topic(FRAMES), v, key=k) for k, v in zip(keys, frames, strict=False)]
        await asyncio.gather(*futures)
        return len(frames) / (time.monotonic() - started)
    finally:
        await producer.stop()


async def output_span(name: str, expected: int, timeout: float) -> tuple[int, float]:
    """Records in `name` and the seconds between the first and the last (broker timestamps)."""
    consumer = make_consumer(name, group=None)
    await consumer.start()
    count, first, last = 0, None, None
    deadline = time.monotonic() + timeout
    try:
        while count < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500, max_records=20000)).values():
                count += len(records)
                stamps = [r.timestamp for r in records]
                first = min(stamps + ([first] if first is not None else []))
                last = max(stamps + ([last] if last is not None else []))
    finally:
        await consumer.stop()
    return count, ((last or 0) - (first or 0)) / 1000


async def topic_size(name: str) -> int:
    """How many records a topic holds (sum of its partitions' end offsets)."""
    consumer = make_consumer(group=None)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in range(settings().kafka_partitions)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def consume_produce_ceiling(total: int) -> float:
    """Read the backlog and write each record to another topic, acknowledged per batch: frames/s."""
    await create_ceiling_topic()
    consumer = make_consumer(group=None)
    await consumer.start()
    producer = make_producer()
    await producer.start()
    try:
        tps = [TopicPartition(topic(FRAMES), p) for p in range(settings().kafka_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done = 0
        started = time.monotonic()
        while done < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            futures = [await producer.send(topic(CEILING_TOPIC), r.value, key=r.key)
                       for records in batch.values() for r in records]
            await asyncio.gather(*futures)
            done += len(futures)
        return total / (time.monotonic() - started)
    finally:
        await producer.stop()
        await consumer.stop()


async def run(devices: int, messages: int) -> dict:
    network = build_network(20, devices, seed=3)
    rng = random.Random(4)
    frames: list[bytes] = []
    keys: list[bytes] = []
    for i in range(messages):
        for f in message_frames(network.devices[i % devices], rng, max_stations=3):
            frames.append(encode_frame(f))
            keys.append(f["device"].encode())
    async with sandbox() as box:
        conn = await db.connect()
        try:
            await seed_network(conn, network, name="ingest-rate")
        finally:
            await conn.close()
        publish_rate = await publish_backlog(frames, keys)
        print(f"backlog: {len(frames)} frames of {messages} messages ({publish_rate:,.0f} frames/s to publish)",
              file=sys.stderr)
        log = Path(tempfile.mkdtemp(prefix="ingest-rate-")) / "worker.log"
        worker = WorkerProcess("relay,ingest", {**os.environ, **box.env}, log).start()
        try:
            await worker.wait_ready(timeout=120)
            count, seconds = await output_span(topic(MESSAGES), messages, timeout=600)
            await asyncio.sleep(2.0)
            written = await topic_size(topic(MESSAGES)) + await topic_size(topic(INGEST_STATE))
        finally:
            worker.stop()
        if count < messages:
            raise SystemExit(f"ingest produced {count} of {messages} messages:\n{worker.log_tail()}")
        ceiling = await consume_produce_ceiling(len(frames))
    ingest_rate = len(frames) / seconds
    return {"frames": len(frames), "messages": messages, "devices": devices,
            "ingestFramesPerS": round(ingest_rate), "ingestRecordsWritten": written, "ceilingFramesPerS": round(ceiling),
            "ratio": round(ingest_rate / ceiling, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest_rate", description=__doc__)
    p.add_argument("--devices", type=int, default=5000)
    p.add_argument("--messages", type=int, default=40000)
    args = p.parse_args(argv)
    result = asyncio.run(run(args.devices, args.messages))
    print(f"{'ingest alone':<32}{result['ingestFramesPerS']:>10,} frames/s")
    print(f"{'raw aiokafka consume-produce':<32}{result['ceilingFramesPerS']:>10,} frames/s")
    print(f"{'ratio':<32}{result['ratio']:>10}")
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
