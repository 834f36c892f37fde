"""Records queued as one batch per partition (backhaul.kafka.queue_batches, behind send_all) and the
delivery worker's Outbox, on the real Kafka: a keyed record lands on the partition `producer.send`
would have chosen, in order within it; the Outbox gathers concurrent callers into shared batches,
answers each once its own records are acknowledged, and fails only the callers whose records failed."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import NewTopic
from aiokafka.errors import ProducerClosed

from backhaul.failures import is_infrastructure
from backhaul.kafka import Out, RecordTooLarge, make_admin, make_producer, queue_batches, send_all
from backhaul.outbox import Outbox
from backhaul.settings import settings
from tests.conftest import read_topic

pytestmark = pytest.mark.integration


async def make_topics(*names: str, partitions: int = 4) -> None:
    admin = make_admin()
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


async def test_keyed_records_land_where_producer_send_puts_them_in_order(isolated):
    batched, single = f"{isolated.prefix}batched", f"{isolated.prefix}single"
    await make_topics(batched, single)
    keys = [f"{n % 37:08X}".encode() for n in range(600)]  # 37 devices, several records each
    producer = make_producer()
    await producer.start()
    try:
        assert await send_all(producer, [Out(batched, k, f"{i}".encode()) for i, k in enumerate(keys)]) == 600
        await send_all(producer, [Out(batched, b"pinned", b"p", partition=2)])
        await asyncio.gather(*[await producer.send(single, f"{i}".encode(), key=k) for i, k in enumerate(keys)])
    finally:
        await producer.stop()
    mine = await read_topic(batched, expect=601)
    theirs = await read_topic(single, expect=600)
    assert {r.key: r.partition for r in mine if r.key != b"pinned"} == {r.key: r.partition for r in theirs}
    assert [r.partition for r in mine if r.key == b"pinned"] == [2]
    for key in set(keys):
        values = [int(r.value) for r in sorted(mine, key=lambda r: r.offset) if r.key == key]
        assert values == sorted(values) and len(values) == keys.count(key), "one partition, in order"


async def test_a_partition_fuller_than_one_batch_goes_in_several_in_order(isolated):
    name = f"{isolated.prefix}big"
    await make_topics(name, partitions=1)
    producer = make_producer(max_batch_size=16 * 1024)
    await producer.start()
    try:
        queued = await queue_batches(producer, [Out(name, b"k", b"%05d" % i + b"x" * 1000) for i in range(100)])
        await asyncio.gather(*(future for _, future in queued))
    finally:
        await producer.stop()
    assert len(queued) > 1 and [i for indexes, _ in queued for i in indexes] == list(range(100))
    records = await read_topic(name, expect=100)
    assert [int(r.value[:5]) for r in sorted(records, key=lambda r: r.offset)] == list(range(100))


async def test_the_outbox_gathers_concurrent_callers_and_answers_each_for_its_own_records(isolated):
    name = f"{isolated.prefix}outbox"
    await make_topics(name)
    producer = make_producer()
    await producer.start()
    queued_calls = []
    real = producer.send_batch

    async def counting(batch, topic, *, partition):
        queued_calls.append(partition)
        return await real(batch, topic, partition=partition)

    producer.send_batch = counting  # type: ignore[method-assign]
    outbox = Outbox(lambda: producer)
    try:
        too_big = b"x" * (settings().kafka_max_record_bytes + 1)
        answers = await asyncio.gather(
            *(outbox.send([Out(name, f"{n:04d}".encode(), b"a"), Out(name, f"{n:04d}".encode(), b"b")])
              for n in range(200)),
            outbox.send([Out(name, b"big", too_big)]), return_exceptions=True)
    finally:
        await producer.stop()
    assert answers[:200] == [None] * 200
    assert isinstance(answers[200], RecordTooLarge), "only the caller whose record is too large fails"
    assert len(queued_calls) <= 8, f"200 callers in {len(queued_calls)} batches: gathered per turn of the loop"
    records = await read_topic(name, expect=400)
    assert sorted((r.key, r.value) for r in records) == sorted(
        (f"{n:04d}".encode(), v) for n in range(200) for v in (b"a", b"b"))


async def test_an_outbox_flush_that_fails_fails_its_callers_and_the_next_one_works(isolated):
    name = f"{isolated.prefix}failing"
    await make_topics(name)
    producer = make_producer()
    await producer.start()
    broken = {"on": True}
    real = producer.send_batch

    async def sometimes(batch, topic, *, partition):
        if broken["on"]:
            raise ConnectionError("broker away")
        return await real(batch, topic, partition=partition)

    producer.send_batch = sometimes  # type: ignore[method-assign]
    outbox = Outbox(lambda: producer)
    try:
        failed = await asyncio.gather(*(outbox.send([Out(name, b"k", b"%d" % n)]) for n in range(5)),
                                      return_exceptions=True)
        broken["on"] = False
        await outbox.send([Out(name, b"k", b"after")])
    finally:
        await producer.stop()
    assert [str(f) for f in failed] == ["broker away"] * 5
    assert [r.value for r in await read_topic(name, expect=1)] == [b"after"]


async def test_a_send_appended_after_the_producer_began_stopping_fails_instead_of_being_left_unsent(isolated):
    # aiokafka 0.14's send_batch checks that the producer is open only before it waits for the partition's
    # previous batch to be drained: a batch it appends once a stop has begun may never be sent nor failed.
    # That hung the chaos test of a Kafka outage (its traffic tasks share a producer and stop it on
    # failure). Here the second send waits behind the first (lingering) batch until the stop drains it:
    # it must fail with ProducerClosed (the caller sends it again on a new producer), not hand back a
    # future of the stopped producer.
    name = f"{isolated.prefix}closing"
    await make_topics(name, partitions=1)
    producer = make_producer(linger_ms=3000)  # the first batch (producer.send's, open) lingers
    await producer.start()
    first = await producer.send(name, b"first", key=b"k")
    second = asyncio.ensure_future(send_all(producer, [Out(name, b"k", b"second")]))
    await asyncio.sleep(0.2)
    await producer.stop()
    done, _ = await asyncio.wait([first, second], timeout=10)
    assert first in done and first.result().offset == 0
    assert second in done, "the second send neither succeeded nor failed"
    assert isinstance(second.exception(), ProducerClosed)
    assert is_infrastructure(second.exception()), "sent again on a new producer, never dead-lettered"
