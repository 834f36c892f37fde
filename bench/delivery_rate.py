"""Deliveries per second to a local receiver: URL and BATCH_URL, beside a raw aiohttp client.

    python -m bench.delivery_rate [--url N] [--batch N] [--concurrency C]

In a private prefix and database (`bench.sandbox`), a `relay,ingest,router`
worker turns simulated frames into N rendered deliveries waiting on the
`deliveries` topic; then a `delivery` worker is started alone and timed from
the moment it is ready (its partitions assigned) to the last callback the
receiver (a child process) stamps. URL
callbacks are GET requests; BATCH_URL callbacks carry one `device;seq` line
per message, and their rate counts messages (lines). The raw aiohttp client
posts to the same receiver with the same number of connections as the
endpoint's concurrency cap. The endpoint's rate limit and queue are lifted so
that the figures show the worker, not its bulkhead settings.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from backhaul import db
from backhaul.kafka import make_consumer
from backhaul.topics import topic
from bench.ceilings import http_ceiling
from bench.cpu import process_cpu_seconds
from bench.pipeline import Pipeline, WorkerProcess
from bench.receiver import SubprocessReceiver
from bench.sandbox import sandbox
from program.demo.seed import seed_network
from schemas.topics import DELIVERIES
from simulator.network import Device, build_network, simulate


@asynccontextmanager
async def rendering(env: dict[str, str], logs: Path, config_records: int) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """A `relay,ingest,router` worker of the sandbox `env`, ready once it applied `config_records`,
    and a count of the deliveries it has queued (`deliveries_counter`); both stopped on the way out."""
    front = Pipeline(["relay,ingest,router"], env, logs)
    front.start()
    consumer = make_consumer(topic(DELIVERIES), group=None)
    await consumer.start()
    try:
        await front.wait_ready(config_records=config_records)
        yield deliveries_counter(consumer)
    finally:
        await consumer.stop()
        front.stop()


def deliveries_counter(consumer: AIOKafkaConsumer):
    """How many records the `deliveries` topic holds (its end offsets)."""
    async def count() -> int:
        name = topic(DELIVERIES)
        tps = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        return sum((await consumer.end_offsets(tps)).values()) if tps else 0
    return count


async def wait_for(check, target: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while (got := await check()) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {got} of {target} after {timeout:.0f} s")
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Timed:
    """A lone delivery worker's run: `what` per second, and its CPU (user + system) per item."""

    rate: float
    cpu_ms_each: float


async def worker_rate(env: dict[str, str], log: Path, arrived: Callable[[], Awaitable[int]], expected: int,
                      timeout: float, what: str,
                      last_arrival: Callable[[], Awaitable[float]] | None = None) -> float:
    """Start a delivery worker on the queued deliveries; `what` per second from its being ready to the
    last arrival (`last_arrival`: the receiver's epoch stamp of it; else when `arrived` reached `expected`).

    `arrived` counts what has arrived since before the worker started (its first sends go as soon as it
    is ready)."""
    return (await worker_run(env, log, arrived, expected, timeout, what, last_arrival)).rate


async def worker_run(env: dict[str, str], log: Path, arrived: Callable[[], Awaitable[int]], expected: int,
                     timeout: float, what: str, last_arrival: Callable[[], Awaitable[float]] | None = None) -> Timed:
    """As `worker_rate`, with the worker's CPU per item from ready to the last arrival (from /proc)."""
    worker = WorkerProcess("delivery", env, log)
    worker.start()
    assert worker.proc is not None  # started above
    try:
        async with aiohttp.ClientSession() as session:
            while not ((await worker.status(session)) or {}).get("ready"):
                await asyncio.sleep(0.05)
        ready = time.time()
        cpu_ready = process_cpu_seconds(worker.proc.pid) or 0.0

        async def counted() -> int:
            assert worker.proc is not None  # started above
            if worker.proc.poll() is not None:
                raise RuntimeError(f"delivery worker exited:\n{worker.log_tail()}")
            return await arrived()
        await wait_for(counted, expected, timeout, what)
        done = time.time()
        cpu = (process_cpu_seconds(worker.proc.pid) or 0.0) - cpu_ready
    finally:
        worker.stop()
    last = await last_arrival() if last_arrival is not None else done
    return Timed(expected / max(1e-9, last - ready), cpu * 1000 / expected)


async def timed_delivery(env: dict[str, str], log: Path, receiver: SubprocessReceiver, expected: int,
                         timeout: float) -> Timed:
    """Callbacks per second of a delivery worker to `receiver`, by the receiver's own stamps, and its CPU."""
    since = (await receiver.counts())["data"]

    async def arrived() -> int:
        return (await receiver.counts())["data"] - since

    async def last_arrival() -> float:
        return max(a[3] for a in await receiver.arrivals(since))
    return await worker_run(env, log, arrived, expected, timeout, "callbacks", last_arrival)


async def run(url_n: int, batch_n: int, concurrency: int) -> dict[str, Timed]:
    limits = {"BACKHAUL_ENDPOINT_CONCURRENCY": str(concurrency), "BACKHAUL_ENDPOINT_RATE_PER_S": "1000000",
              "BACKHAUL_ENDPOINT_BURST": "1000000", "BACKHAUL_ENDPOINT_QUEUE": "1000000",
              "BACKHAUL_LOG_LEVEL": "WARNING"}
    receiver = SubprocessReceiver()
    await receiver.start()
    logs = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    try:
        async with sandbox(limits) as box:
            env = {**os.environ, **box.env}
            devices = 500
            url_net = build_network(2, devices, seed=3)
            batch_net = build_network(2, devices, seed=4)
            batch_net.devices = [Device(f"{0x200000 + i:X}", d.lat, d.lng, d.seq, d.nearest)
                                 for i, d in enumerate(batch_net.devices)]
            conn = await db.connect()
            try:
                await seed_network(conn, url_net, name="url", callbacks=[
                    {"url": receiver.url + "/data?device={device}&seq={seqNumber}", "http_method": "GET"}])
                await seed_network(conn, batch_net, name="batch", callbacks=[
                    {"channel": "BATCH_URL", "url": receiver.url + "/batch", "http_method": "POST",
                     "line_pattern": "{device};{seqNumber}"}])
            finally:
                await conn.close()
            async with rendering(box.env, logs, 2 * (3 + devices)) as queued_deliveries:
                figures: dict[str, Timed] = {}
                for name, network, n in (("URL", url_net, url_n), ("BATCH_URL", batch_net, batch_n)):
                    before = await queued_deliveries()
                    await simulate(network, messages_per_device=n // devices, rate=0, duration=None,
                                   max_stations=1, progress=False)
                    await wait_for(queued_deliveries, before + n, 120, f"{name} deliveries rendered")
                    figures[name] = await timed_delivery(env, logs / f"delivery-{name}.log", receiver, n, 300)
        ceiling = await http_ceiling(receiver.url + "/ceiling", requests=url_n, concurrency=concurrency, body=b"{}")
        figures["raw aiohttp client"] = Timed(ceiling["requestsPerS"], ceiling.get("cpuMsPerRequest", 0.0))
        return figures
    finally:
        await receiver.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", type=int, default=5000, help="URL deliveries (a multiple of 500)")
    p.add_argument("--batch", type=int, default=20000, help="BATCH_URL deliveries (a multiple of 500)")
    p.add_argument("--concurrency", type=int, default=64, help="connections to the receiver")
    args = p.parse_args(argv)
    figures = asyncio.run(run(args.url, args.batch, args.concurrency))
    counts = {"URL": args.url, "BATCH_URL": args.batch, "raw aiohttp client": args.url}
    print(f"\n{'':<20} {'messages':>9} {'deliveries/s':>13} {'CPU ms each':>12}")
    for name, timed in figures.items():
        print(f"{name:<20} {counts[name]:>9} {timed.rate:>13,.0f} {timed.cpu_ms_each:>12.3f}")
    print(f"(local receiver in a child process, {args.concurrency} connections; "
          f"BATCH_URL counts messages, one line each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
