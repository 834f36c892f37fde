"""The faults of the channels that produce to Kafka (KAFKA, AZURE_EVENT_HUBS): the cluster unreachable then
back, and the kill -9 of a delivery worker mid-flight. The faults are the same; which records are the
test's own (a topic of its own, or its tag in a shared topic) differs: `read`.

The outage is a relay in front of the bootstrap address, closed then opened: after bootstrap the client
produces to the brokers' advertised address, not through the relay, so the relay is closed from the
start and it is the bootstrap that fails.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable

import orjson

from program.supervised import WorkerProcess, free_port
from simulator.network import simulate
from tests.conftest import Pipeline, frame, publish_frames, wait_until

# This test's records so far: the topic read for up to `timeout` seconds.
Read = Callable[[float], Awaitable[list]]

# The cluster's rate paced (100/s) so that the kill finds hundreds of deliveries held by the worker.
CRASH_ENV = {"BACKHAUL_RETRY_CLAIM_S": "3", "BACKHAUL_ENDPOINT_RATE_PER_S": "100", "BACKHAUL_ENDPOINT_BURST": "10",
             "BACKHAUL_ENDPOINT_QUEUE": "1000"}
OUTAGE_ENV = {"BACKHAUL_RETRY_SCHEDULE_S": "1,1,1,1,1", "BACKHAUL_RETRY_JITTER": "0",
              "BACKHAUL_CALLBACK_TIMEOUT_S": "3", "BACKHAUL_BREAKER_FAILURES": "100"}


class Proxy:
    """A TCP forwarder standing in for the customer's bootstrap address: closed (connection refused),
    then opened."""

    def __init__(self, target: str) -> None:
        self.port = free_port()
        self.host, port = target.rsplit(":", 1)
        self.target_port = int(port)
        self.server: asyncio.AbstractServer | None = None

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


def headers_of(record) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


async def unreachable_then_back(pipe: Pipeline, proxy: Proxy, read: Read, seq: int = 7) -> object:
    """Send one message to `pipe`'s callback, whose bootstrap is `proxy` (closed): the attempt fails with
    the client's connection error in cbStatus; open the relay: a retry delivers it. Returns the record."""
    await publish_frames([frame(pipe.devices[0], seq, station=pipe.stations[0])])
    failed = await pipe.wait_rows("SELECT status, error_class, info FROM callback_attempts "
                                  "WHERE status = 600", 1, timeout=10)
    print("attempt while the cluster is away:", failed[0]["info"])
    assert failed[0]["error_class"] == "connect"
    assert failed[0]["info"].startswith(f"KafkaConnectionError: Unable to bootstrap from 127.0.0.1:{proxy.port}: ")
    assert "Connect call failed" in failed[0]["info"], "the client's own words"
    await proxy.open()

    records: list = []

    async def arrived() -> bool:
        records[:] = await read(1.0)
        return bool(records)
    await wait_until(arrived, 15, "the message once the cluster is back")
    [record] = records
    assert orjson.loads(record.value)["seq"] == seq
    rows = await pipe.wait_rows("SELECT attempt, status, delivery_id FROM callback_attempts WHERE status = 200", 1)
    assert rows[0]["attempt"] >= 2, "delivered by a retry"
    assert headers_of(record)["message-id"] == rows[0]["delivery_id"]
    return record


async def kill_9_mid_flight(pipe: Pipeline, restart: Callable[[], WorkerProcess], read: Read,
                            total: int = 500) -> None:
    """Send 5 messages per device of `pipe` (a relay,ingest,router,store worker and a delivery worker), kill -9
    the delivery worker once 50 records arrived, with deliveries in flight, start another (`restart()`):
    every message arrives, and a message delivered twice carries the same message-id both times."""
    sent = await simulate(pipe.network, messages_per_device=5, rate=0, duration=None, max_stations=3,
                          progress=False)
    assert sent["messages"] == total

    async def some_arrived() -> bool:
        return len(await read(0.5)) >= 50
    await wait_until(some_arrived, 15, "50 records before the crash")
    in_flight = await pipe.workers[1].metrics()
    pipe.workers[1].kill9()
    before = len(await read(0.5))
    gauge = next(line for line in in_flight.splitlines() if line.startswith("backhaul_deliveries_in_flight "))
    print(f"killed with {before} records in the customer's topic; {gauge}")
    assert float(gauge.split()[1]) > 0 and before < total, "killed with deliveries in flight"
    restarted = restart()
    await restarted.wait_ready()

    ids: dict[tuple[str, int], set[str]] = defaultdict(set)
    records: list = []

    async def every_message() -> bool:
        records[:] = await read(1.0)
        ids.clear()
        for r in records:
            ids[(r.key.decode(), orjson.loads(r.value)["seq"])].add(headers_of(r)["message-id"])
        return len(ids) >= total
    await wait_until(every_message, 15, f"all {total} messages\n{restarted.log_tail()}")
    print(f"{len(records)} records for {len(ids)} messages: {len(records) - len(ids)} repeats")
    assert len(ids) == total, "every message arrived"
    assert all(len(v) == 1 for v in ids.values()), "a repeat carries the same message-id"
