"""Kafka helpers of the security tests: raw records in, committed offsets and dead letters out."""
from __future__ import annotations

import asyncio

import orjson

from backhaul.kafka import make_admin, make_producer
from backhaul.topics import topic
from schemas.dead_letters import DeadLetter
from schemas.topics import DEAD_LETTERS
from tests.conftest import read_topic, wait_until

Raw = tuple[bytes | None, bytes | None]


def raw(value: dict | bytes | None, key: bytes | None = b"k") -> Raw:
    """A (key, value) record; dicts are encoded as JSON."""
    return key, orjson.dumps(value) if isinstance(value, dict) else value


async def publish_raw(name: str, records: list[Raw], partition: int | None = None) -> list[tuple[int, int]]:
    """Publish records to topic `name` (the configured prefix added) in order; their (partition, offset)."""
    producer = make_producer()
    await producer.start()
    try:
        futures = [await producer.send(topic(name), value, key=key, partition=partition) for key, value in records]
        return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


async def committed(group: str) -> dict[tuple[str, int], int]:
    """The committed offsets of a stage's consumer group: (topic, partition) -> next offset."""
    admin = make_admin()
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(topic(group))
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    finally:
        await admin.close()


async def wait_committed_past(group: str, name: str, positions: list[tuple[int, int]], timeout: float = 30.0):
    """Wait until the group has committed past every (partition, offset) of topic `name`."""
    needed: dict[int, int] = {}
    for partition, offset in positions:
        needed[partition] = max(needed.get(partition, 0), offset + 1)

    async def past() -> bool:
        done = await committed(group)
        return all(done.get((topic(name), p), -1) >= o for p, o in needed.items())

    await wait_until(past, timeout, f"{group} to commit past {needed} of {name}", interval=0.5)


async def dead_letters(expect: int, timeout: float = 30.0) -> list[DeadLetter]:
    return [DeadLetter.decode(r.value) for r in await read_topic(topic(DEAD_LETTERS), expect=expect, timeout=timeout)]


def at(letters: list[DeadLetter], name: str, position: tuple[int, int]) -> DeadLetter:
    """The one dead letter of topic `name` at (partition, offset)."""
    [letter] = [d for d in letters if (d.topic, d.partition, d.offset) == (topic(name), *position)]
    return letter
