"""Deliveries per second through the KAFKA channel to our own Kafka, beside a raw aiokafka producer.

    python -m bench.kafka_rate [--n N] [--concurrency C]

In a private prefix and database (`bench.sandbox`), a `relay,ingest,router` worker turns simulated
frames into N rendered KAFKA deliveries waiting on the `deliveries` topic (a JSON body, key = device,
`message-id` and `callback-type` headers); then a `delivery` worker is started alone and timed from
the moment it is ready to the moment the customer's topic holds N records. The customer's cluster
is the local Kafka's gateway listener (SASL SCRAM-SHA-512, Backhaul's own user): the same server
the raw client then writes N records of the same size to, with C sends in flight, on a producer
made as the channel makes its own (idempotent, acks=all, 5 ms linger). The endpoint's rate limit
and queue are lifted so that the figures show the worker, not its bulkhead settings; every
delivery is also announced and recorded in `delivery-results`, which the raw client does not do.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from backhaul import db
from backhaul.kafka import make_admin, make_consumer
from backhaul.settings import settings
from bench.delivery_rate import rendering, wait_for, worker_rate
from bench.report import print_rates
from bench.sandbox import sandbox
from program.demo.seed import seed_network
from simulator.network import build_network, simulate
from workers.channels.kafka import Target

BODY = '{"device": "{device}", "seq": {seqNumber}, "data": "{data}", "time": {time}}'
PARTITIONS = 4


def records_counter(name: str):
    """A consumer (to start) and how many records topic `name` holds (its end offsets)."""
    consumer = make_consumer(group=None)

    async def count() -> int:
        tps = [TopicPartition(name, p) for p in range(PARTITIONS)]
        return sum((await consumer.end_offsets(tps)).values())
    return consumer, count


async def channel_rate(env: dict[str, str], log: Path, count, expected: int, timeout: float) -> float:
    """Records per second a delivery worker writes to the customer's topic (counted by its end offsets)."""
    since = await count()  # before the worker starts: its first records go as soon as it is ready

    async def arrived() -> int:
        return await count() - since
    return await worker_rate(env, log, arrived, expected, timeout, "records in the customer's topic")


async def raw_rate(target: Target, name: str, n: int, concurrency: int, size: int) -> float:
    producer = target.producer(30.0)
    await producer.start()
    try:
        value = b"x" * size
        headers = [("message-id", b"0" * 40), ("callback-type", b"DATA_UPLINK")]
        remaining = n
        started = time.monotonic()

        async def sender() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await (await producer.send(name, value, key=f"{remaining:06X}".encode(), headers=headers))
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return n / (time.monotonic() - started)
    finally:
        await producer.stop()


async def run(n: int, concurrency: int) -> dict[str, float]:
    limits = {"BACKHAUL_ENDPOINT_CONCURRENCY": str(concurrency), "BACKHAUL_ENDPOINT_RATE_PER_S": "1000000",
              "BACKHAUL_ENDPOINT_BURST": "1000000", "BACKHAUL_ENDPOINT_QUEUE": "1000000",
              "BACKHAUL_LOG_LEVEL": "WARNING"}
    logs = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    async with sandbox(limits) as box:
        s = settings()
        customer, raw = f"{box.prefix}customer", f"{box.prefix}customer-raw"
        admin = make_admin()
        await admin.start()
        try:
            await admin.create_topics([NewTopic(customer, PARTITIONS, 1), NewTopic(raw, PARTITIONS, 1)])
        finally:
            await admin.close()
        target = Target(s.kafka_gateway, s.kafka_username, s.kafka_password, "SCRAM-SHA-512", False)
        devices = 500
        network = build_network(2, devices, seed=5)
        conn = await db.connect()
        try:
            await seed_network(conn, network, name="kafka", callbacks=[{
                "channel": "KAFKA", "content_type": "application/json", "body_template": BODY,
                "channel_settings": {"bootstrapServers": [s.kafka_gateway], "topic": customer, "tls": False,
                                     "sasl": {"mechanism": "SCRAM-SHA-512", "username": s.kafka_username,
                                              "password": s.kafka_password}}}])
        finally:
            await conn.close()
        env = {**os.environ, **box.env}
        records, count = records_counter(customer)
        await records.start()
        try:
            async with rendering(box.env, logs, 3 + devices) as queued:
                await simulate(network, messages_per_device=n // devices, rate=0, duration=None, max_stations=1,
                               progress=False)
                await wait_for(queued, n, 120, "KAFKA deliveries rendered")
                figures = {"KAFKA channel": await channel_rate(env, logs / "delivery.log", count, n, 120)}
        finally:
            await records.stop()
        size = len(BODY) + 20  # about a rendered body
        figures["raw aiokafka producer"] = await raw_rate(target, raw, n, concurrency, size)
        return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5000, help="messages (a multiple of 500)")
    p.add_argument("--concurrency", type=int, default=64, help="sends in flight (the endpoint's concurrency)")
    args = p.parse_args(argv)
    figures = asyncio.run(run(args.n, args.concurrency))
    print_rates(figures, args.n, f"our Kafka's SASL gateway listener, {args.concurrency} sends in flight", "records/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
