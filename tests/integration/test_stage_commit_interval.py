"""A stage that commits every `commit_every_s` (backhaul.stage), on the real Kafka: batches in between are
published at once but committed together; a batch that fails rewinds every partition to its last commit
and restores the state persisted then, so no record counts twice or goes missing; leaving (stop) commits
what was handled. The stage under test sums the numbers of each partition, its state "persisted" in a
dict as a changelog would be."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from backhaul.kafka import Out
from backhaul.stage import Stage
from backhaul.topics import topic
from tests.conftest import read_topic, wait_until
from tests.integration.test_batched_produce import make_topics
from tests.security.kafka_support import committed, dead_letters, publish_raw

pytestmark = pytest.mark.integration

NUMBERS, SUMS = "numbers", "sums"


class Summing(Stage):
    """Adds up each partition's numbers; one output per record (its offset and the partition's running sum).
    b"huge" is a valid record whose output the broker would refuse: the batch holding it fails."""

    name = "summing"
    group = "backhaul-summing"
    tick_interval_s = 0.05

    def __init__(self, commit_every_s: float) -> None:
        super().__init__()
        self.topics = (topic(NUMBERS),)
        self.commit_every_s = commit_every_s
        self.sums: dict[int, int] = {}
        self.persisted: dict[int, int] = {}  # the durable state: what a restart would read back
        self.persists = 0

    def process(self, batch):
        return self.each_record(batch, self._add)

    def _add(self, tp: TopicPartition, rec, outputs: list[Out]) -> None:
        if rec.value == b"huge":
            outputs.append(Out(topic(SUMS), b"k", b"x" * 10_000_000))
            return
        self.sums[tp.partition] = self.sums.get(tp.partition, 0) + int(rec.value)
        outputs.append(Out(topic(SUMS), b"k", f"{tp.partition}:{rec.offset}:{self.sums[tp.partition]}".encode(),
                           partition=tp.partition))

    async def persist(self) -> None:
        self.persisted.update(self.sums)
        self.persists += 1

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self.sums[tp.partition] = self.persisted.get(tp.partition, 0)

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self.sums.pop(tp.partition, None)


async def running(stage: Stage) -> asyncio.Task:
    task = asyncio.create_task(stage.run())
    await wait_until(lambda: stage.ready.is_set() or task.done(), 30, "the stage to join and restore")
    assert not task.done(), task
    return task


async def offsets_committed(group: str) -> dict[int, int]:
    return {p: o for (t, p), o in (await committed(group)).items() if t == topic(NUMBERS)}


async def test_batches_between_commits_are_published_at_once_and_committed_together(isolated):
    await make_topics(topic(NUMBERS), topic(SUMS), partitions=2)
    stage = Summing(commit_every_s=3600)  # no commit by the clock during the test
    task = await running(stage)
    try:
        for round_ in range(3):  # three publishes: three batches or more
            await publish_raw(NUMBERS, [(b"k", b"1")] * 5, partition=round_ % 2)
            await wait_until(lambda n=5 * (round_ + 1): sum(stage.sums.values()) == n, 15, "the round handled")
        outputs = await read_topic(topic(SUMS), expect=15)
        assert len(outputs) == 15, "published before any commit"
        assert stage.persists == 0 and await offsets_committed(stage.group) == {}, "nothing committed yet"
    finally:
        stage.stop()
        await asyncio.wait_for(task, 30)
    assert await offsets_committed(stage.group) == {0: 10, 1: 5}, "leaving commits what was handled"
    assert stage.persisted == {0: 10, 1: 5}


async def test_a_failing_batch_rewinds_every_partition_to_the_last_commit(isolated):
    await make_topics(topic(NUMBERS), topic(SUMS), partitions=2)
    stage = Summing(commit_every_s=3600)
    task = await running(stage)
    try:
        await publish_raw(NUMBERS, [(b"k", b"2")] * 4, partition=0)
        await publish_raw(NUMBERS, [(b"k", b"3")] * 4, partition=1)
        await wait_until(lambda: stage.sums == {0: 8, 1: 12}, 15, "the first records handled, not committed")
        # Partition 1 fails; partition 0's records since the last commit must be read again too (its state
        # is restored as persisted then), and partition 1's from before the failing batch.
        poison = await publish_raw(NUMBERS, [(b"k", b"5"), (b"k", b"huge"), (b"k", b"7")], partition=1)
        await publish_raw(NUMBERS, [(b"k", b"1")], partition=0)
        [letter] = await dead_letters(expect=1, timeout=60)
        assert (letter.stage, letter.offset, letter.error_type, letter.attempts) == (
            "summing", poison[1][1], "RecordTooLarge", 3)
        await wait_until(lambda: stage.sums == {0: 9, 1: 24}, 30, f"every record counted once: {stage.sums}")
    finally:
        stage.stop()
        await asyncio.wait_for(task, 30)
    assert stage.persisted == {0: 9, 1: 24}, "each record counted once on top of the state it changed"
    assert await offsets_committed(stage.group) == {0: 5, 1: 7}
    sums = [r.value.decode() for r in await read_topic(topic(SUMS), expect=10)]
    assert "0:3:8" in sums and "1:6:24" in sums, "a repeat is the same output again"
