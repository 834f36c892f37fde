"""What a record costs through Kafka with nothing else done: the floor under every stage's work.

    python -m bench.record_floor [--records 200000] [--batch 500] [--size 300] [--rounds 3]

In a private prefix (`bench.sandbox`), N records of the pipeline's size, keyed over 5,000 devices, are
produced with the pipeline's producer and `send_all` in batches of B (a stage's publish), then read
back by a consumer with the stages' fetch settings (`getmany`, as a stage reads). For each half, the
CPU of this process (the client) and of the broker (/proc), per record. Multiplied by the records each
message makes on each topic (`backhaul bench --keep` and the topics' offsets: bench/README.md), it says
what the pipeline's Kafka traffic costs at the least, before any of Backhaul's own work.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from backhaul.kafka import Out, make_admin, make_consumer, make_producer, send_all
from backhaul.settings import PROJECT_ROOT, settings
from backhaul.stage import Stage
from backhaul.topics import topic
from bench.cpu import process_cpu_seconds, stack_sources
from bench.sandbox import sandbox

FLOOR_TOPIC = "bench.floor"
DEVICES = 5000
PARTITIONS = 4  # as the pipeline's topics (BACKHAUL_KAFKA_PARTITIONS)


def broker_cpu() -> float:
    source = stack_sources().get("kafka (shared)")
    return sum(process_cpu_seconds(pid) or 0.0 for pid in source()) if source else float("nan")


async def produce(name: str, records: int, batch: int, size: int) -> tuple[float, float, float]:
    """(client CPU s, broker CPU s, seconds) to produce `records` in `send_all` calls of `batch`."""
    rng = random.Random(7)
    keys = [f"{n:08X}".encode() for n in range(DEVICES)]
    value = b"x" * size
    producer = make_producer()
    await producer.start()
    try:
        chunks = [[Out(name, rng.choice(keys), value) for _ in range(batch)] for _ in range(records // batch)]
        cpu, broker, started = time.process_time(), broker_cpu(), time.monotonic()
        for chunk in chunks:
            await send_all(producer, chunk)
        return time.process_time() - cpu, broker_cpu() - broker, time.monotonic() - started
    finally:
        await producer.stop()


async def consume(name: str, records: int) -> tuple[float, float, float]:
    """(client CPU s, broker CPU s, seconds) to read `records` back as a stage reads."""
    consumer = make_consumer(group=None, fetch_min_bytes=Stage.fetch_min_bytes,
                             fetch_max_wait_ms=Stage.fetch_max_wait_ms, max_poll_records=Stage.max_records)
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        got = 0
        cpu, broker, started = time.process_time(), broker_cpu(), time.monotonic()
        while got < records:
            batch = await consumer.getmany(timeout_ms=1000, max_records=Stage.max_records)
            got += sum(len(rs) for rs in batch.values())
        return time.process_time() - cpu, broker_cpu() - broker, time.monotonic() - started
    finally:
        await consumer.stop()


async def one_round(records: int, batch: int, size: int, n: int) -> dict[str, float]:
    records -= records % batch  # whole send_all calls only: the reader waits for every record produced
    name = topic(f"{FLOOR_TOPIC}{n}")
    admin = make_admin()
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, settings().kafka_replication_factor)])
    finally:
        await admin.close()
    p_cpu, p_broker, p_s = await produce(name, records, batch, size)
    c_cpu, c_broker, c_s = await consume(name, records)
    us = 1e6 / records
    return {"produceClientUs": round(p_cpu * us, 2), "produceBrokerUs": round(p_broker * us, 2),
            "consumeClientUs": round(c_cpu * us, 2), "consumeBrokerUs": round(c_broker * us, 2),
            "producePerS": round(records / p_s), "consumePerS": round(records / c_s)}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--size", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results")
    args = p.parse_args()
    async with sandbox():
        runs = [await one_round(args.records, args.batch, args.size, n) for n in range(args.rounds)]
    for run in runs:
        print(json.dumps(run))
    result = {"mode": "record-floor", "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "records": args.records, "batch": args.batch, "size": args.size, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"record-floor-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"JSON: {path}")


if __name__ == "__main__":
    asyncio.run(main())
