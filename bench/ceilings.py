"""The ceilings measured in the same run: what Kafka and HTTP give with no processing at all.

* Kafka: the same frames (same keys, same bytes) produced with the pipeline's
  producer settings to a private topic while a consumer reads them back with
  `getmany`; frames/s from the first send to the last frame consumed.
* HTTP: a raw aiohttp client posting to the same receiver with the same
  connection count as the delivery worker may use; requests/s.
"""
from __future__ import annotations

import asyncio
import time

import aiohttp
from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from backhaul.kafka import make_admin, make_consumer, make_producer
from backhaul.settings import settings
from backhaul.topics import topic

CEILING_TOPIC = "bench.ceiling"


async def create_ceiling_topic() -> None:
    """Create the ceiling's topic early, so that its partitions have a leader when it is measured."""
    admin = make_admin()
    await admin.start()
    try:
        name = topic(CEILING_TOPIC)
        if name not in await admin.list_topics():
            await admin.create_topics([NewTopic(name, settings().kafka_partitions, settings().kafka_replication_factor)])
    finally:
        await admin.close()


async def kafka_ceiling(frames: list[tuple[bytes, bytes]]) -> dict:
    """Produce `frames` ((key, value) pairs) and consume them back concurrently; rates in frames/s."""
    name = topic(CEILING_TOPIC)
    partitions = settings().kafka_partitions
    consumer = make_consumer(group=None)
    await consumer.start()
    producer = make_producer()
    await producer.start()
    try:
        tps = [TopicPartition(name, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        total = len(frames)
        consumed = 0
        done = asyncio.Event()

        async def consume() -> float:
            nonlocal consumed
            while consumed < total:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batch.values():
                    consumed += len(records)
            done.set()
            return time.monotonic()

        reader = asyncio.create_task(consume())
        started = time.monotonic()
        futures = [await producer.send(name, value, key=key) for key, value in frames]
        await asyncio.gather(*futures)
        produced_at = time.monotonic()
        consumed_at = await asyncio.wait_for(reader, timeout=120)
        return {"frames": total, "produceFramesPerS": round(total / max(1e-9, produced_at - started)),
                "framesPerS": round(total / max(1e-9, consumed_at - started))}
    finally:
        await producer.stop()
        await consumer.stop()


async def http_ceiling(url: str, *, requests: int, concurrency: int, body: bytes) -> dict:
    """POST `body` to `url` `requests` times over `concurrency` keep-alive connections; requests/s."""
    remaining = requests
    failures = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if resp.status != 200:
                    failures += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        started, cpu = time.monotonic(), time.process_time()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    return {"requests": requests, "concurrency": concurrency, "failures": failures,
            "requestsPerS": round(requests / max(1e-9, elapsed)), "cpuMsPerRequest": round(cpu * 1000 / requests, 4)}
