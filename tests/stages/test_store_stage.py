"""The store stage alone (store/stage.py), in this process, on the real Kafka and PostgreSQL.

Its contract: it reads `messages`, `messages.advanced`, `device-events` and `delivery-results` and
writes their rows in one transaction per batch; it commits the batch's offsets only after that
transaction (a record whose rows are not written is not committed); it numbers a delivery's
sends itself, one row per send, however many times a try is repeated, and goes on with the next
records (no stall, nothing set aside); a replayed record writes nothing twice; a batch, written with
one statement per table, writes what its records written one by one write (a key twice in it, a
delivery's new sends numbered within it, a batch PostgreSQL refuses). What it writes is read back
through the API in tests/integration/test_store_readback.py.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from backhaul import db
from backhaul.kafka import Out, make_producer, send_all
from backhaul.stage import Batch
from backhaul.topics import topic
from callback_language.downlink import InfoCode, ack_event
from schemas import delivery_results as results
from schemas.advanced_messages import AdvancedMessage, encode_advanced_message
from schemas.dead_letters import DeadLetter
from schemas.deliveries import Delivery, new_delivery
from schemas.delivery_results import DeliveryResult, encode_delivery_result
from schemas.device_events import DeviceEvent, encode_device_event, keep_alive_error
from schemas.downlinks import Downlink, encode_downlink, granted, transmission
from schemas.messages import Message, encode_message
from schemas.topics import (
    DEAD_LETTERS,
    DELIVERY_RESULTS,
    DEVICE_EVENTS,
    DOWNLINK_TRANSMISSIONS,
    DOWNLINKS,
    MESSAGES,
    MESSAGES_ADVANCED,
)
from store.stage import Rows, StoreStage
from tests.conftest import wait_until
from tests.stages.stage_records import (
    HEARD,
    LOCATION,
    T0,
    Owned,
    Owner,
    advanced,
    error_event,
    keyed_message,
    message,
    subject,
    trashed_event,
)
from tests.stages.stage_support import (
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
D1, D2, D3, D4 = "5D0001", "5D0002", "5D0003", "5D0004"


@pytest.fixture
async def pool(isolated) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(min_size=1, max_size=4)
    yield pool
    await pool.close()


def delivery_of(conf: Owner, m: Message, callback: str = "cb") -> Delivery:
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


# One batch against the same records one by one ---------------------------------------------------
# The batches below are handed to the stage directly (`process`, then `persist`), so that what is one
# batch is certain; the records are built and encoded as upstream publishes them.

OWNER = Owned("dt", "g", {D1: 1, D2: 1, D3: 1, D4: 1})
AGAIN = Owned("dt", "g", {D3: 2, D4: 2})  # D3 and D4 registered again
WRITTEN = ("messages", "device_events", "callback_attempts", "undelivered_callbacks", "message_downlinks",
           "device_status", "callback_health")
Record = tuple[str, bytes]  # (input topic, value)


class CountedStore(StoreStage):
    """The store stage, counting its transactions: a batch written record by record (after PostgreSQL
    refused it) takes more than one."""

    writes = 0

    async def _write(self, rows: Rows) -> None:
        self.writes += 1
        await super()._write(rows)


def read_order(records: list[Record]) -> list[Record]:
    """`records` in the order the stage reads them as one batch: topic by topic (in the order of each
    topic's first record), each in its order."""
    return [r for name in dict.fromkeys(n for n, _ in records) for r in records if r[0] == name]


def batch_of(records: list[Record]) -> Batch:
    """`records` as the stage reads them in one batch (each topic's partition 0, from offset 0)."""
    batch: Batch = {}
    for name, value in records:
        tp = TopicPartition(topic(name), 0)
        records_of_tp = batch.setdefault(tp, [])
        records_of_tp.append(ConsumerRecord(tp.topic, 0, len(records_of_tp), 0, 0, None, value, None, 0, 0, []))
    return batch


async def stored(pool: asyncpg.Pool, batches: list[list[Record]]) -> dict[str, list[dict[str, Any]]]:
    """Every row the store writes from `batches`, into emptied tables, each batch handed to the stage as
    one batch and written in one transaction; nothing set aside. Each row as its columns (but the time
    it was written at), each table's in a fixed order."""
    await pool.execute(f"TRUNCATE {', '.join(WRITTEN)}")
    stage = CountedStore(pool)
    for batch in batches:
        assert stage.process(batch_of(batch)) == []
        await stage.persist()
    assert stage.writes == len(batches), "a batch written record by record: PostgreSQL refused it"
    assert stage._dead == []
    return {table: [json.loads(r["row"]) for r in await pool.fetch(
        f"SELECT (to_jsonb(t) - 'stored_at' - 'updated_at')::text AS row FROM {table} t ORDER BY row")]
        for table in WRITTEN}


async def as_one_batch_and_one_by_one(pool: asyncpg.Pool, before: list[list[Record]],
                                      batch: list[Record]) -> dict[str, list[dict[str, Any]]]:
    """After the batches `before`, what `batch` written as one batch writes, asserted equal to what its
    records write one batch each (as `executemany` wrote them, one row after the other)."""
    one_by_one = await stored(pool, before + [[r] for r in read_order(batch)])
    as_one = await stored(pool, before + [batch])
    assert as_one == one_by_one
    return as_one


def msg(m: Message) -> Record:
    return MESSAGES, encode_message(m)


def adv(a: AdvancedMessage) -> Record:
    return MESSAGES_ADVANCED, encode_advanced_message(a)


def event(e: DeviceEvent) -> Record:
    return DEVICE_EVENTS, encode_device_event(e)


def result(r: DeliveryResult) -> Record:
    return DELIVERY_RESULTS, encode_delivery_result(r)


def grant(m: Message) -> Downlink:
    d = new_delivery(m, callback_id="bidir", kind="DATA_BIDIR", channel="URL", device_type_id=OWNER.device_type,
                     message_id=m["id"], origin_ms=m["time"], created_ms=m["time"] + 80,
                     variables={"station": m["station"], "rssi": m["rssi"]}, downlink=True)
    return granted(d, "0011223344556677", created_ms=m["time"] + 900, transmit_by_ms=m["time"] + 20_000)


def acknowledge(m: Message, code: InfoCode, at_ms: int, **kw: Any) -> Record:
    return event(ack_event(m["device"], m["id"], code, device_type_id=OWNER.device_type, group_id=OWNER.group,
                           now_ms=at_ms, registration_id=OWNER.registrations[m["device"]], uplink_ms=m["time"], **kw))


def downlink(g: Downlink) -> Record:
    return DOWNLINKS, encode_downlink(g)


def sent(g: Downlink, station: str, at_ms: int) -> Record:
    return DOWNLINK_TRANSMISSIONS, encode_downlink(transmission(g, station=station, rssi=-95.0, data_hex=g["data"] or "",
                                                                now_ms=at_ms))


async def test_new_sends_of_one_batch_are_numbered_in_their_order_after_the_sends_written(isolated, pool):
    """Two new sends of a delivery in one batch are numbered 1 and 2 in the order they were announced
    (another delivery's send between them numbered apart); in the next batch, the completion of send 2
    (and a copy of send 1's announcement) takes no number and the new send after it is number 3; the
    same as each record in a batch of its own."""
    d, other = (delivery_of(OWNER, message(OWNER, device, 1)) for device in (D1, D2))
    first = [result(results.sending(d, "s1", 1, T0)), result(results.sending(other, "o1", 1, T0 + 100)),
             result(results.sending(d, "s2", 2, T0 + 60_000))]
    second = [result(results.sending(d, "s1", 1, T0)), result(answered(d, "s2", 2, T0 + 60_000, 500)),
              result(results.sending(d, "s3", 3, T0 + 120_000))]
    await stored(pool, [first, second])
    assert await attempts_of(pool, d["id"]) == [(1, "s1", 600), (2, "s2", 500), (3, "s3", None)], \
        "s1, cut short by s2, closed as interrupted"
    assert await attempts_of(pool, other["id"]) == [(1, "o1", None)]
    await as_one_batch_and_one_by_one(pool, [], first)
    await as_one_batch_and_one_by_one(pool, [first], second)


async def test_an_aggregate_twice_and_a_downlinks_three_records_in_one_batch_write_as_one_by_one(isolated, pool):
    """The same DATA_ADVANCED message twice in one batch (heard by more stations the second time: the
    second one's receptions stay), and the grant, the transmission and the ACKNOWLEDGE of a downlink
    in one batch (of one already granted, and of one answered twice), write what the same records
    write one batch each."""
    m1, m2, m3 = (message(OWNER, D1, n, time_ms=T0 + n * 60_000, ack=n > 1) for n in (1, 2, 3))
    g2, g3 = grant(m2), grant(m3)
    before = [[msg(m) for m in (m1, m2, m3)], [downlink(g3)]]
    batch = [adv(advanced(OWNER, m1, HEARD[:2], lqi=("Good", 2))), msg(m1),
             adv(advanced(OWNER, m1, location={**LOCATION, "radius": 900})),
             downlink(g2), sent(g2, "5A02", m2["time"] + 19_000),
             acknowledge(m2, InfoCode.ACKED, m2["time"] + 19_100, downlink_ack=True, station="5A02"),
             acknowledge(m3, InfoCode.NETWORK_ERROR, m3["time"] + 19_200, reason="Network error: none"),
             sent(g3, "5A01", m3["time"] + 19_000), acknowledge(m3, InfoCode.ACKED, m3["time"] + 25_000),
             downlink(g3)]
    rows = await as_one_batch_and_one_by_one(pool, before, batch)
    assert len(rows["messages"]) == 3 and len(rows["message_downlinks"]) == 2
    first = next(r for r in rows["messages"] if r["id"] == m1["id"])
    assert (len(first["rinfos"]), first["computed_location"]["radius"]) == (3, 900), "the second aggregate's"


async def test_a_devices_status_from_one_batch_is_what_its_records_set_one_by_one(isolated, pool):
    """Device status, whatever each record sets, in one batch: messages alone (the lqi and the com_state
    written before stay), an aggregate (its lqi), keep-alive events (the com_state), and devices
    registered again whose records of both registrations are in the batch (the old registration's
    first, or last: a record still in flight)."""
    first = [message(OWNER, device, 1) for device in (D1, D2, D3, D4)]
    before = [[msg(m) for m in first] + [adv(advanced(OWNER, first[0], lqi=("Excellent", 3))),
                                         event(error_event(OWNER, D2, deadline_ms=T0 + 90_000, last_seen_ms=T0))]]
    later = [message(OWNER, device, 2, time_ms=T0 + 120_000) for device in (D1, D2, D3, D4)]
    again = [message(AGAIN, device, 1, time_ms=T0 + 180_000) for device in (D3, D4)]
    batch = [msg(m) for m in (*later[:3], again[0], again[1], later[3])] + [
        adv(advanced(OWNER, later[2], lqi=("Average", 1))),
        event(error_event(AGAIN, D3, deadline_ms=T0 + 300_000, last_seen_ms=again[0]["time"])),
        event(trashed_event(OWNER, D1, seq=1, last_seq=2, time_ms=T0 + 130_000))]
    rows = await as_one_batch_and_one_by_one(pool, before, batch)
    status = {r["device_id"]: (r["lqi"], r["com_state"], r["registration_id"]) for r in rows["device_status"]}
    assert status == {D1: (3, 1, 1), D2: (4, 3, 1), D3: (4, 3, 2), D4: (4, 1, 2)}


async def test_the_same_record_twice_in_one_batch_writes_one_row(isolated, pool):
    """A message, a device event and a given-up delivery's result read twice in one batch (a record
    published again): one row each, as written one by one."""
    m = message(OWNER, D1, 1)
    d = delivery_of(OWNER, m)
    given_up = result(results.done(d, send_id="s1", attempt=1, sent_at_ms=T0, now_ms=T0 + 20, status=503,
                                   error_class="http_5xx", info="HTTP 503", latency_ms=20.0, answer="",
                                   dead_delivery=d))
    error = event(error_event(OWNER, D1, deadline_ms=T0 + 90_000, last_seen_ms=T0))
    rows = await as_one_batch_and_one_by_one(pool, [], [msg(m), error, given_up, msg(m), error, given_up])
    assert [len(rows[t]) for t in ("messages", "device_events", "callback_attempts", "undelivered_callbacks")] \
        == [1, 1, 1, 1]


async def test_a_batch_postgresql_refuses_is_written_record_by_record(isolated, pool):
    """A NUL character (in a message's data, in an event's body) and a seqNumber out of range in one
    batch: PostgreSQL refuses the batch, the store writes its records one by one (each through the
    same statements) and sets aside those three, and only them."""
    d = delivery_of(OWNER, message(OWNER, D2, 1))
    good = [message(OWNER, D1, 1), message(OWNER, D2, 1)]
    nul = keep_alive_error(subject(OWNER, D1), T0 + 90_000, deadline_key_ms=T0 + 90_000, info="a NUL \u0000",
                           last_seen_ms=T0)
    batch = [msg(good[0]), msg(message(OWNER, D1, 2, data="00\u000011")), msg(message(OWNER, D1, 2 ** 40)),
             msg(good[1]), event(nul), event(error_event(OWNER, D2, deadline_ms=T0 + 90_000, last_seen_ms=T0)),
             result(results.sending(d, "s1", 1, T0)), result(results.sending(d, "s2", 2, T0 + 1))]
    stage = CountedStore(pool)
    stage.process(batch_of(batch))
    await stage.persist()
    assert stage.writes == 1 + len(batch)
    assert [(p.letter.topic, p.letter.offset, p.letter.error_type) for p in stage._dead] == [
        (topic(MESSAGES), 1, "CharacterNotInRepertoireError"), (topic(MESSAGES), 2, "DataError"),
        (topic(DEVICE_EVENTS), 0, "UntranslatableCharacterError")]
    assert sorted(r["id"] for r in await pool.fetch("SELECT id FROM messages")) == sorted(m["id"] for m in good)
    assert [r["device_id"] for r in await pool.fetch("SELECT device_id FROM device_events")] == [D2]
    assert await attempts_of(pool, d["id"]) == [(1, "s1", 600), (2, "s2", None)]
