"""Running ONE stage in this process, on the real Kafka and PostgreSQL, and reading what it did.

A stage test seeds the configuration (`configured`: rows in PostgreSQL, carried to the `config`
topic by the relay's own publishing step, read by a real `ConfigView`), publishes typed records
(built and encoded with `schemas/`) onto the stage's input topics, runs the stage alone
(`running`), and reads its output topics (`records_of`: every record up to the end, decoded by
the caller with the schema's decoder) and its consumer group's committed offsets (`committed`,
`ends`). Every topic and the database are the test's own (the `isolated` fixture).
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiokafka import TopicPartition
from aiokafka.errors import GroupCoordinatorNotAvailableError

from backhaul import db
from backhaul.config_relay import publish_pending
from backhaul.configview import ConfigView
from backhaul.kafka import make_consumer, make_producer
from backhaul.topics import topic
from program.demo.seed import seed_network
from simulator.network import Device, Network, Station
from tests.conftest import wait_until
from tests.security.kafka_support import committed, publish_raw

T = TypeVar("T")
STATIONS = [Station("5A01", 43.60, 1.40), Station("5A02", 43.60, 1.50), Station("5A03", 43.70, 1.45)]


@dataclass
class Configured:
    """A seeded network as the stage's configuration view sees it."""

    view: ConfigView
    ids: dict[str, str]
    devices: list[str]
    registrations: dict[str, int]  # device -> its registration (stamped on every record)

    @property
    def device_type(self) -> str:
        return self.ids["deviceType"]

    @property
    def group(self) -> str:
        return self.ids["group"]


async def configure(devices: Sequence[str], callbacks: Sequence[dict[str, Any]] = (), *, name: str = "stage",
                    parent_group: str | None = None, **device_type: Any) -> dict[str, Any]:
    """Seed a network (the stations above, `devices`, one device type with `callbacks`) and publish
    it to the `config` topic as the relay does; returns the ids and the devices' registrations."""
    network = Network(STATIONS, [Device(d, 43.62, 1.45) for d in devices])
    conn = await db.connect()
    producer = make_producer()
    await producer.start()
    try:
        ids = await seed_network(conn, network, name=name, callbacks=callbacks, parent_group=parent_group,
                                 device_type=device_type)
        while await publish_pending(conn, producer):
            pass
        rows = await conn.fetch("SELECT id, registration_id FROM devices WHERE id = ANY($1)", list(devices))
    finally:
        await producer.stop()
        await conn.close()
    return {"ids": ids, "registrations": {r["id"]: r["registration_id"] for r in rows}}


@contextlib.asynccontextmanager
async def configured(devices: Sequence[str], callbacks: Sequence[dict[str, Any]] = (),
                     **options: Any) -> AsyncIterator[Configured]:
    """`configure`, then a configuration view loaded from the `config` topic (stopped at the end)."""
    seeded = await configure(devices, callbacks, **options)
    view = ConfigView()
    await view.start()
    try:
        yield Configured(view, seeded["ids"], list(devices), seeded["registrations"])
    finally:
        await view.stop()


class Runnable(Protocol):
    """A stage (`backhaul.stage.Stage`) or the delivery worker: run until stopped, ready once in its group."""

    ready: asyncio.Event

    async def run(self) -> None: ...

    def stop(self) -> None: ...


R = TypeVar("R", bound=Runnable)


@contextlib.asynccontextmanager
async def running(stage: R, timeout: float = 30.0) -> AsyncIterator[R]:
    """Run `stage` in this process until the end of the block, once it has joined its consumer
    group; its failure, if any, is raised."""
    task = asyncio.create_task(stage.run())
    try:
        await wait_until(lambda: stage.ready.is_set() or task.done(), timeout,
                         f"{type(stage).__name__} to join its group")
        if task.done():
            task.result()
        yield stage
        if task.done():
            task.result()
    finally:
        stage.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)


async def publish(name: str, records: Sequence[tuple[bytes | None, bytes]]) -> list[tuple[int, int]]:
    """Publish (key, value) records to topic `name` in order; their (partition, offset)."""
    return await publish_raw(name, list(records))


async def ends(name: str) -> dict[int, int]:
    """The end offset of every partition of topic `name`: partition -> next offset."""
    consumer = make_consumer(group=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic(name), p) for p in sorted(consumer.partitions_for_topic(topic(name)) or ())]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def commits(group: str, name: str) -> dict[int, int]:
    """What `group` has committed on topic `name`: partition -> next offset (partitions never committed
    are absent). The broker may need a moment to host the first group it is asked about."""
    async def ask() -> dict[tuple[str, int], int] | None:
        with contextlib.suppress(GroupCoordinatorNotAvailableError):
            return await committed(group)
        return None
    [done] = await wait_until(lambda: _not_none(ask()), 20, f"the coordinator of {group}", interval=0.5)
    return {p: o for (t, p), o in done.items() if t == topic(name)}


async def _not_none(value: Awaitable[T | None]) -> tuple[T] | None:
    """`(value,)` once `value` is not None: a truthy answer for wait_until even when value is empty."""
    got = await value
    return None if got is None else (got,)


async def wait_all_committed(group: str, names: Sequence[str], timeout: float = 20.0) -> None:
    """Wait until `group` has committed every record of the topics (the stage handled all of them)."""
    async def caught_up() -> bool:
        for name in names:
            done = await commits(group, name)
            if any(done.get(p, 0) < end for p, end in (await ends(name)).items() if end > 0):
                return False
        return True
    await wait_until(caught_up, timeout, f"{group} to commit every record of {list(names)}", interval=0.2)


async def records_of(name: str, decode: Callable[[bytes], T], timeout: float = 15.0) -> list[T]:
    """Every record of topic `name` up to its current end, decoded; in partition then offset order."""
    consumer = make_consumer(group=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic(name), p) for p in sorted(consumer.partitions_for_topic(topic(name)) or ())]
        end = await consumer.end_offsets(tps)
        wanted = [tp for tp in tps if end[tp] > 0]
        if not wanted:
            return []
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        by_partition: dict[TopicPartition, list[bytes]] = {tp: [] for tp in wanted}
        deadline = time.monotonic() + timeout
        while [tp for tp in wanted if await consumer.position(tp) < end[tp]]:
            assert time.monotonic() < deadline, f"{name} could not be read to its end in {timeout} s"
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                by_partition[tp].extend(r.value for r in batch if r.offset < end[tp])
        return [decode(v) for tp in wanted for v in by_partition[tp]]
    finally:
        await consumer.stop()
