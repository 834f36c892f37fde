"""Deliveries per second through the KAFKA or AZURE_EVENT_HUBS channel to our own Kafka, beside a raw aiokafka producer.

    python -m bench.kafka_rate [--channel KAFKA|AZURE_EVENT_HUBS] [--n N] [--concurrency C]

In a private prefix and database (`bench.sandbox`), a `relay,ingest,router` worker turns simulated
frames into N rendered KAFKA deliveries waiting on the `deliveries` topic (a JSON body, key = device,
`message-id` and `callback-type` headers); then a `delivery` worker is started alone and timed from
the moment it is ready to the moment the customer's topic holds N records. The customer's cluster
is the local Kafka's gateway listener: for KAFKA with SASL SCRAM-SHA-512 (Backhaul's own user), for
AZURE_EVENT_HUBS with SASL PLAIN as Event Hubs' Kafka endpoint takes it (user `$ConnectionString`,
password a connection string whose EntityPath is the topic `bench-hub`). That user is static: the
first run adds it with `deploy/local/kafka.sh add-plain-user`, which restarts the broker (and again
after tests/integration/test_channel_sasl_plain.py, whose `$ConnectionString` has another hub). The
raw client then writes N records of the same size to the same listener as the same user, with C
sends in flight, on a producer made as the channel makes its own (idempotent, acks=all, 5 ms linger). The endpoint's rate limit
and queue are lifted so that the figures show the worker, not its bulkhead settings; every
delivery is also announced and recorded in `delivery-results`, which the raw client does not do.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

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
HUB = "bench-hub"  # outside every sandbox prefix: the PLAIN user's ACL names it, and it outlives a run
HUB_CONNECTION = ("Endpoint=sb://backhaul-bench.servicebus.windows.net/;SharedAccessKeyName=send;"
                  f"SharedAccessKey=YmVuY2gta2V5LTEyMzQ1Njc4OTBhYmNkZWY=;EntityPath={HUB}")
CHANNELS = ("KAFKA", "AZURE_EVENT_HUBS")
ROOT = Path(__file__).resolve().parents[1]


def add_hub_user() -> None:
    """The PLAIN user Event Hubs' clients log in as (restarts the broker when it changes)."""
    result = subprocess.run(["bash", str(ROOT / "deploy/local/kafka.sh"), "add-plain-user", "$ConnectionString",
                             HUB_CONNECTION, HUB], capture_output=True, text=True, timeout=400)
    if result.returncode != 0:
        raise SystemExit(f"kafka.sh add-plain-user failed: {result.stderr.strip()}")


def customer_settings(channel: str, topic: str) -> tuple[dict, Target]:
    """The callback's channelSettings and the raw client's target, as the same user on the same listener."""
    s = settings()
    if channel == "KAFKA":
        return ({"bootstrapServers": [s.kafka_gateway], "topic": topic, "tls": False,
                 "sasl": {"mechanism": "SCRAM-SHA-512", "username": s.kafka_username, "password": s.kafka_password}},
                Target(s.kafka_gateway, s.kafka_username, s.kafka_password, "SCRAM-SHA-512", False))
    return ({"connectionString": HUB_CONNECTION, "bootstrapServers": [s.kafka_gateway], "tls": False},
            Target(s.kafka_gateway, "$ConnectionString", HUB_CONNECTION, "PLAIN", False))


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


async def run(channel: str, n: int, concurrency: int) -> dict[str, float]:
    limits = {"BACKHAUL_ENDPOINT_CONCURRENCY": str(concurrency), "BACKHAUL_ENDPOINT_RATE_PER_S": "1000000",
              "BACKHAUL_ENDPOINT_BURST": "1000000", "BACKHAUL_ENDPOINT_QUEUE": "1000000",
              "BACKHAUL_LOG_LEVEL": "WARNING"}
    logs = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    async with sandbox(limits) as box:
        # KAFKA writes to a topic of the sandbox (and the raw client to another); Event Hubs' user may
        # write to its hub only, so both write there and the channel is counted from its end offsets.
        customer, raw = (f"{box.prefix}customer", f"{box.prefix}customer-raw") if channel == "KAFKA" else (HUB, HUB)
        admin = make_admin()
        await admin.start()
        try:
            for name in {customer, raw}:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics([NewTopic(name, PARTITIONS, settings().kafka_replication_factor)])
        finally:
            await admin.close()
        channel_settings, target = customer_settings(channel, customer)
        devices = 500
        network = build_network(2, devices, seed=5)
        conn = await db.connect()
        try:
            await seed_network(conn, network, name="kafka", callbacks=[{
                "channel": channel, "content_type": "application/json", "body_template": BODY,
                "channel_settings": channel_settings}])
        finally:
            await conn.close()
        env = {**os.environ, **box.env}
        records, count = records_counter(customer)
        await records.start()
        try:
            async with rendering(box.env, logs, 3 + devices) as queued:
                await simulate(network, messages_per_device=n // devices, rate=0, duration=None, max_stations=1,
                               progress=False)
                await wait_for(queued, n, 120, f"{channel} deliveries rendered")
                figures = {f"{channel} channel": await channel_rate(env, logs / "delivery.log", count, n, 120)}
        finally:
            await records.stop()
        size = len(BODY) + 20  # about a rendered body
        figures[f"raw aiokafka producer ({target.mechanism})"] = await raw_rate(target, raw, n, concurrency, size)
        return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5000, help="messages (a multiple of 500)")
    p.add_argument("--concurrency", type=int, default=64, help="sends in flight (the endpoint's concurrency)")
    p.add_argument("--channel", choices=CHANNELS, default=None, help="one channel (default: both, one after the other)")
    args = p.parse_args(argv)
    for channel in [args.channel] if args.channel else CHANNELS:
        if channel == "AZURE_EVENT_HUBS":
            add_hub_user()
        figures = asyncio.run(run(channel, args.n, args.concurrency))
        print_rates(figures, args.n, f"our Kafka's SASL gateway listener, {args.concurrency} sends in flight",
                    "records/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
