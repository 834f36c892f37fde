"""The store stage alone (store/stage.py), in this process, on the real Kafka and PostgreSQL.

Its contract: it reads `messages`, `messages.advanced`, `device-events` and `delivery-results` and
writes their rows in one transaction per batch; it commits the batch's offsets only after that
transaction (a record whose rows are not written is not committed); it numbers a delivery's
sends itself, one row per send, however many times a try is repeated, and goes on with the next
records (no stall, nothing set aside); a replayed record writes nothing twice. What it writes is
read back through the API in tests/integration/test_store_readback.py.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from backhaul import db
from backhaul.kafka import Out, make_producer, send_all
from backhaul.topics import topic
from schemas import delivery_results as results
from schemas.dead_letters import DeadLetter
from schemas.deliveries import Delivery, new_delivery
from schemas.delivery_results import DeliveryResult, encode_delivery_result
from schemas.messages import Message
from schemas.topics import DEAD_LETTERS, DELIVERY_RESULTS, DEVICE_EVENTS, MESSAGES, MESSAGES_ADVANCED
from store.stage import StoreStage
from tests.conftest import wait_until
from tests.stages.stage_records import T0, keyed_message, message
from tests.stages.stage_support import (
    Configured,
    commits,
    configured,
    ends,
    publish,
    records_of,
    running,
    wait_all_committed,
)

pytestmark = pytest.mark.integration

GROUP = "backhaul-store"
INPUTS = (MESSAGES, MESSAGES_ADVANCED, DEVICE_EVENTS, DELIVERY_RESULTS)
D1, D2 = "5D0001", "5D0002"


@pytest.fixture
async def pool(isolated) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(min_size=1, max_size=4)
    yield pool
    await pool.close()


def delivery_of(conf: Configured, m: Message, callback: str = "cb") -> Delivery:
    """The delivery the router makes of message `m` for `callback`."""
    return new_delivery(m, callback_id=callback, kind="DATA_UPLINK", channel="URL", device_type_id=conf.device_type,
                        message_id=m["id"], origin_ms=m["time"], created_ms=m["time"] + 50,
                        variables={"device": m["device"]})


def answered(d: Delivery, send: str, attempt: int, at: int, status: int) -> DeliveryResult:
    """The completion of send `send` (try `attempt`) of `d`, answered `status`."""
    return results.done(d, send_id=send, attempt=attempt, sent_at_ms=at, now_ms=at + 20, status=status,
                        error_class="ok" if status == 200 else "http_5xx", info=None if status == 200 else f"HTTP {status}",
                        latency_ms=20.0, answer="", next_attempt_at_ms=None if status == 200 else at + 60_000)


async def publish_results(records: list[DeliveryResult]) -> None:
    producer = make_producer()
    await producer.start()
    try:
        await send_all(producer, [Out(topic(DELIVERY_RESULTS), r["device"].encode(), encode_delivery_result(r))
                                  for r in records])
    finally:
        await producer.stop()


async def test_a_batch_is_committed_only_after_its_transaction(isolated, pool):
    """While PostgreSQL cannot take the rows (the table is locked), the record stays uncommitted;
    once they are written, it is committed."""
    async with configured([D1]) as conf:
        m = message(conf, D1, 1)
        blocker = await db.connect()
        try:
            lock = blocker.transaction()
            await lock.start()
            await blocker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            async with running(StoreStage(pool)):
                await publish(MESSAGES, [keyed_message(m)])
                # (seen from another connection: a transaction sees one snapshot of pg_stat_activity)
                await wait_until(lambda: pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' "
                    "AND query LIKE 'INSERT INTO messages%'", isolated.database), 15, "the store's insert to wait")
                await asyncio.sleep(0.5)  # time it would need to commit, were it committing early
                assert await commits(GROUP, MESSAGES) == {}, "not written: not committed"
                await lock.rollback()
                await wait_all_committed(GROUP, [MESSAGES])
            assert await blocker.fetchval("SELECT count(*) FROM messages WHERE id = $1", m["id"]) == 1
        finally:
            await blocker.close()


# Sends of one delivery, in the order the worker announced them: (send id, try, answer or None when
# the worker died during the request, so the send is left open and closed by the next one).
SENDS = [("s1", 1, 500), ("s2", 2, None), ("s3", 2, 500), ("s4", 3, None), ("s5", 3, None), ("s6", 3, 503),
         ("s7", 4, 500), ("s8", 4, None), ("s9", 4, None), ("s10", 4, None), ("s11", 4, 500), ("s12", 5, 200)]
EXPECTED = [(n, send, 600 if status is None else status) for n, (send, _, status) in enumerate(SENDS, 1)]
STEP_BY_STEP = 6  # the first sends are written one record per batch, the others a few at a time


async def test_repeated_attempts_of_one_delivery_do_not_stall_the_store(isolated, pool):
    """The issue's example: twelve sends of one delivery, tries repeated after crashes, written one
    record per batch and then several at a time, then all of them replayed, then their announcements
    alone again: one row per send, numbered 1..12, open while its request is out, closed as
    interrupted by the next send when it was cut short; and the store goes on with the next record
    at once (nothing stalls, nothing is set aside)."""
    async with configured([D1, D2]) as conf:
        d = delivery_of(conf, message(conf, D1, 1))
        announcements = [results.sending(d, send, attempt, T0 + 1000 * i) for i, (send, attempt, _) in enumerate(SENDS)]
        answers = [None if status is None else answered(d, send, attempt, T0 + 1000 * i, status)
                   for i, (send, attempt, status) in enumerate(SENDS)]
        async with running(StoreStage(pool)):
            for i in range(STEP_BY_STEP):
                await publish_results([announcements[i]])
                await wait_all_committed(GROUP, [DELIVERY_RESULTS])
                assert await attempts_of(pool, d["id"]) == [*EXPECTED[:i], (i + 1, SENDS[i][0], None)], \
                    "the new send is open (its request is out), the ones before it are closed"
                if answers[i] is not None:
                    await publish_results([answers[i]])
                    await wait_all_committed(GROUP, [DELIVERY_RESULTS])
            for i in range(STEP_BY_STEP, len(SENDS), 3):
                await publish_results([r for j in range(i, i + 3) for r in (announcements[j], answers[j]) if r])
            await wait_all_committed(GROUP, [DELIVERY_RESULTS])
            assert await attempts_of(pool, d["id"]) == EXPECTED

            await publish_results([r for pair in zip(announcements, answers, strict=True) for r in pair if r])
            await publish_results(announcements)  # copies of the announcements, after their answers
            marker = delivery_of(conf, message(conf, D2, 1))
            await publish_results([results.sending(marker, "marker", 1, T0 + 99_000)])
            await wait_until(lambda: attempts_of(pool, marker["id"]), 10, "the next record written")
            await wait_all_committed(GROUP, [DELIVERY_RESULTS], timeout=10)
        assert await attempts_of(pool, d["id"]) == EXPECTED, "the replays changed nothing"
        assert await commits(GROUP, DELIVERY_RESULTS) == \
            {p: e for p, e in (await ends(DELIVERY_RESULTS)).items() if e}
        assert await records_of(DEAD_LETTERS, DeadLetter.decode) == [], "nothing set aside"


async def attempts_of(pool: asyncpg.Pool, delivery_id: str) -> list[tuple[int, str, int | None]]:
    rows = await pool.fetch("SELECT attempt, send_id, status FROM callback_attempts WHERE delivery_id = $1 "
                            "ORDER BY attempt", delivery_id)
    return [(r["attempt"], r["send_id"], r["status"]) for r in rows]


async def test_an_answer_recorded_after_its_send_was_closed_as_interrupted_replaces_the_guess(isolated, pool):
    """After a rebalance, the worker that lost the partition may still be waiting for its request
    while the new owner sends the delivery again: the new send closes the first as interrupted (its
    answer unknown), then the first one's answer arrives. The answer replaces the guess: both
    requests reached the endpoint and both are listed with what it answered."""
    async with configured([D1]) as conf:
        d = delivery_of(conf, message(conf, D1, 1))
        async with running(StoreStage(pool)):
            await publish_results([results.sending(d, "old-owner", 1, T0)])
            await publish_results([results.sending(d, "new-owner", 1, T0 + 20_000)])
            await wait_all_committed(GROUP, [DELIVERY_RESULTS])
            assert await attempts_of(pool, d["id"]) == [(1, "old-owner", 600), (2, "new-owner", None)]
            await publish_results([answered(d, "new-owner", 1, T0 + 20_000, 200)])
            await publish_results([answered(d, "old-owner", 1, T0, 200)])
            await wait_all_committed(GROUP, [DELIVERY_RESULTS])
            rows = await pool.fetch("SELECT attempt, status, error_class, info, latency_ms FROM callback_attempts "
                                    "WHERE delivery_id = $1 ORDER BY attempt", d["id"])
            assert [tuple(r) for r in rows] == [(1, 200, "ok", None, 20.0), (2, 200, "ok", None, 20.0)]
            await publish_results([results.sending(d, "old-owner", 1, T0)])  # and a copy changes nothing
            await wait_all_committed(GROUP, [DELIVERY_RESULTS])
            assert [tuple(r) for r in await pool.fetch(
                "SELECT attempt, status, error_class, info, latency_ms FROM callback_attempts WHERE delivery_id = $1 "
                "ORDER BY attempt", d["id"])] == [tuple(r) for r in rows]
