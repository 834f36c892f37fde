"""The store stage: messages, aggregates, device events and delivery results -> PostgreSQL.

Rows are written in one transaction per batch, one statement per table (`Columns`),
every statement idempotent (stable ids, ON CONFLICT), and the offsets are committed after the
transaction: a replayed batch writes nothing twice. A record that cannot be
read is dead-lettered; a row PostgreSQL refuses for its data (a NUL character,
a number out of range) makes the batch be written again record by record, and
the records it still refuses are dead-lettered: no record blocks a partition.
While PostgreSQL is unreachable the batch waits and is tried again.

Delivery results are one row of `callback_attempts` per send (`sendId`,
`schemas.delivery_results`): the announcement (`state: sending`, no status
yet) inserts it, numbered after the delivery's earlier sends, and the
completion fills it in; both in one batch make one row. A send that is still
open when a later send of the same delivery is written was cut short by a
crash of the delivery worker: it is closed as `interrupted` (status 600, its
answer unknown). Should its answer be recorded after all (the worker that
sent it lost the partition in a rebalance while waiting for the answer, and
the new owner sent the delivery again meanwhile), the answer replaces that
guess: both requests reached the endpoint.

A callback is marked `dead` when one of its deliveries is given up and no
delivery of that callback has succeeded since that delivery's retry
schedule started (`callback_health` keeps each callback's last success): so
only when every delivery has been failing for at least a whole schedule
(7 min 40 s with the Sigfox preset), not for one message an endpoint
refuses. One successful delivery clears it.

An undelivered record's `time` is the time of the message it was for (the
reference's "timestamp of the message"), not when it was given up.

What became of the downlink an uplink asked for is one `message_downlinks`
row (the message's downlinkAnswerStatus in the API), merged from three
records whatever order they come in: the grant (`downlinks`: its data, or a
DIRECT template), the transmission (`downlink-transmissions`: the station
chosen, its rssi, the final data) and the ACKNOWLEDGE event (the outcome; the
first one decided stays, as the event itself does in `device_events`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
import orjson
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from backhaul import metrics
from backhaul.failures import POSTGRES_REFUSED
from backhaul.kafka import Out
from backhaul.stage import Batch, Stage
from backhaul.topics import topic
from schemas import delivery_results as results
from schemas.advanced_messages import AdvancedMessage, decode_advanced_message
from schemas.deliveries import Delivery, message_time_ms, schedule_start_ms
from schemas.device_events import DeviceEvent, decode_device_event
from schemas.downlinks import Downlink, decode_downlink, decode_transmission
from schemas.messages import Message, decode_message
from schemas.topics import (
    DELIVERY_RESULTS,
    DEVICE_EVENTS,
    DOWNLINK_TRANSMISSIONS,
    DOWNLINKS,
    MESSAGES,
    MESSAGES_ADVANCED,
)

log = logging.getLogger(__name__)

COM_STATE = {"ERROR": 3, "RESTORED": 1}
INTERRUPTED_INFO = "no answer recorded: the delivery worker stopped during this request; it was sent again"


class Columns:
    """The rows of a table sent as one array per column, read back as rows by `unnest`.

    The store writes each table with ONE statement per batch, `INSERT ... SELECT ... FROM
    unnest($1::text[], ...)`, rather than one execution of a statement per row (`executemany`):
    every execution costs PostgreSQL and asyncpg a fixed overhead, paid per row before (issue 19,
    README "Performance"). `source` is that `FROM` item, the rows `r(<names>, ord)`, `ord` a row's
    place in the batch (from 1); `arrays` makes its parameters. A jsonb value goes as its JSON text
    (what the pool's codec sends), in a text array cast to jsonb[]: asyncpg would take a list value
    (rinfos) for another dimension of the array.
    """

    def __init__(self, spec: str) -> None:
        self.columns = [(name, kind) for name, kind in (column.split() for column in spec.split(","))]
        self.names = ", ".join(name for name, _ in self.columns)
        arrays = ", ".join(f"${n}::text[]::jsonb[]" if kind == "jsonb" else f"${n}::{kind}[]"
                           for n, (_, kind) in enumerate(self.columns, 1))
        self.source = f"unnest({arrays}) WITH ORDINALITY AS r({self.names}, ord)"
        self._jsonb = [i for i, (_, kind) in enumerate(self.columns) if kind == "jsonb"]

    def insert(self, table: str) -> str:
        """Every row into `table`, column for column (the statement's ON CONFLICT clause to follow)."""
        return f"INSERT INTO {table}({self.names}) SELECT {self.names} FROM {self.source}"

    def arrays(self, rows: list[tuple]) -> list[list[Any]]:
        """The parameters of `source` for `rows` (tuples in the order of the columns)."""
        arrays = [list(column) for column in zip(*rows, strict=True)]
        for i in self._jsonb:
            arrays[i] = [None if value is None else orjson.dumps(value).decode() for value in arrays[i]]
        return arrays


# Rows.messages, Rows.advanced, Rows.events and Rows.undelivered, as they are built below. A row already
# there (the same record again) is left as it is, but a DATA_ADVANCED record updates its message's receptions.
MESSAGE = Columns("id text, device_id text, device_type_id text, time bigint, seq_number int, data text, "
                  "ack_required boolean, rinfos jsonb, over_quota boolean, registration_id bigint")
MESSAGE_INSERT = f"{MESSAGE.insert('messages')} ON CONFLICT (id) DO NOTHING"
ADVANCED = Columns("id text, device_id text, device_type_id text, time bigint, seq_number int, data text, "
                   "ack_required boolean, rinfos jsonb, nb_frames int, lqi int, computed_location jsonb, "
                   "registration_id bigint")
ADVANCED_UPSERT = (
    f"{ADVANCED.insert('messages')} ON CONFLICT (id) DO UPDATE SET rinfos = EXCLUDED.rinfos, "
    "nb_frames = EXCLUDED.nb_frames, lqi = EXCLUDED.lqi, computed_location = EXCLUDED.computed_location")
EVENT = Columns("id text, device_id text, type text, time bigint, body jsonb, registration_id bigint")
EVENT_INSERT = f"{EVENT.insert('device_events')} ON CONFLICT (id) DO NOTHING"
UNDELIVERED = Columns(
    "delivery_id text, device_id text, device_type_id text, group_id text, callback_id text, message_id text, "
    "time bigint, data text, snr float8, status int, message text, callback jsonb, parameters jsonb, delivery jsonb, "
    "registration_id bigint")
UNDELIVERED_INSERT = f"{UNDELIVERED.insert('undelivered_callbacks')} ON CONFLICT (delivery_id) DO NOTHING"

# One row per send, numbered after the delivery's earlier sends; its completion fills it in (or replaces
# an `interrupted` closure: the answer of a send another one had been taken to have cut short). The sends of
# a batch are numbered in their order, after the rows the statement finds: a send already written (`known`)
# is only updated and takes no number. Send ids are distinct within a batch (merged_sends). `known` is a
# scalar subquery on purpose: as EXISTS, PostgreSQL may plan it as a hash of every send id (a scan of the
# whole table per batch), which it did on a table that grew from empty (bench: 3.3 ms a batch).
# RETURNING gives the sends written and their numbers (see CLOSE_INTERRUPTED).
SEND = Columns("send_id text, delivery_id text, message_id text, device_id text, callback_id text, time bigint, "
               "status int, info text, latency_ms float8, error_class text, answer text, registration_id bigint")
ATTEMPT_UPSERT = (
    "INSERT INTO callback_attempts(send_id, delivery_id, attempt, message_id, device_id, callback_id, time, "
    "status, info, latency_ms, error_class, answer, registration_id) "
    "SELECT send_id, delivery_id, "
    "COALESCE((SELECT max(a.attempt) FROM callback_attempts a WHERE a.delivery_id = s.delivery_id), 0) "
    "+ count(*) FILTER (WHERE NOT known) OVER (PARTITION BY delivery_id ORDER BY ord), "
    "message_id, device_id, callback_id, time, status, info, latency_ms, error_class, answer, registration_id "
    "FROM (SELECT r.*, (SELECT a.attempt FROM callback_attempts a WHERE a.send_id = r.send_id) IS NOT NULL "
    "AS known "
    f"FROM {SEND.source}) s "
    "ON CONFLICT (send_id) DO UPDATE SET status = EXCLUDED.status, info = EXCLUDED.info, "
    "latency_ms = EXCLUDED.latency_ms, error_class = EXCLUDED.error_class, answer = EXCLUDED.answer "
    "WHERE EXCLUDED.status IS NOT NULL "
    "AND (callback_attempts.status IS NULL OR callback_attempts.error_class = 'interrupted') "
    "RETURNING send_id, attempt")
# Sends of the same delivery announced before one of these and still open were cut short. Only a send
# numbered 2 or more can have one, so the statement runs only for those (`later_sends`): almost never,
# where it ran for every batch and PostgreSQL planned it as a scan of the whole table (56 % of its
# time in the bench at 700 messages/s; issue 19).
CLOSE_INTERRUPTED = (
    "UPDATE callback_attempts a SET status = 600, error_class = 'interrupted', info = $2 "
    "FROM callback_attempts n WHERE n.send_id = ANY($1::text[]) AND a.delivery_id = n.delivery_id "
    "AND a.attempt < n.attempt AND a.status IS NULL")

# The downlink of an uplink, merged from its grant, its transmission and its ACKNOWLEDGE: each sets what it
# knows and keeps what the others set (the first value known of each field stays, as the first outcome does).
# Rows.downlinks, one message_id per statement (see `rounds`).
_OUTCOME = "message_downlinks.info_code IS NULL"
DOWNLINK = Columns(
    "message_id text, device_id text, registration_id bigint, time bigint, source text, data text, station text, "
    "rssi float8, granted_at bigint, left_at bigint, info_code int, info_message text, downlink_ack boolean, "
    "downlink_overusage boolean, acknowledged_at bigint")
DOWNLINK_UPSERT = (
    f"{DOWNLINK.insert('message_downlinks')} "
    "ON CONFLICT (message_id) DO UPDATE SET "
    "registration_id = COALESCE(message_downlinks.registration_id, EXCLUDED.registration_id), "
    "time = LEAST(message_downlinks.time, EXCLUDED.time), "
    "source = COALESCE(message_downlinks.source, EXCLUDED.source), "
    "data = COALESCE(message_downlinks.data, EXCLUDED.data), "
    "station = COALESCE(message_downlinks.station, EXCLUDED.station), "
    "rssi = COALESCE(message_downlinks.rssi, EXCLUDED.rssi), "
    "granted_at = COALESCE(message_downlinks.granted_at, EXCLUDED.granted_at), "
    "left_at = COALESCE(message_downlinks.left_at, EXCLUDED.left_at), "
    f"info_code = CASE WHEN {_OUTCOME} THEN EXCLUDED.info_code ELSE message_downlinks.info_code END, "
    f"info_message = CASE WHEN {_OUTCOME} THEN EXCLUDED.info_message ELSE message_downlinks.info_message END, "
    f"downlink_ack = CASE WHEN {_OUTCOME} THEN EXCLUDED.downlink_ack ELSE message_downlinks.downlink_ack END, "
    f"downlink_overusage = CASE WHEN {_OUTCOME} THEN EXCLUDED.downlink_overusage "
    "ELSE message_downlinks.downlink_overusage END, "
    f"acknowledged_at = CASE WHEN {_OUTCOME} THEN EXCLUDED.acknowledged_at "
    "ELSE message_downlinks.acknowledged_at END")

# A device's radio status belongs to its registration: a later registration replaces the row
# (a device registered again starts NOT_SEEN), an earlier one (records still in flight after a
# delete or a transfer) never touches it, and the same one merges into it. A row made by a
# message starts OK (the device was heard), one made by an event alone NOT_SEEN unless the event
# says otherwise. Whether its rows set the lqi ($9) and the com_state ($10) is the statement's
# (`status_statements`): the update sees only EXCLUDED, where an lqi or a com_state not given is
# already its default.
_FRESH = "EXCLUDED.registration_id > device_status.registration_id"
STATUS = Columns("device_id text, sequence_number int, last_com bigint, lqi int, last_computed_location jsonb, "
                 "com_state int, trash_sequence_number int, registration_id bigint")
STATUS_UPSERT = (
    "INSERT INTO device_status(device_id, sequence_number, last_com, lqi, last_computed_location, com_state, "
    "trash_sequence_number, registration_id, updated_at) "
    "SELECT device_id, sequence_number, last_com, COALESCE(lqi, 4), last_computed_location, "
    "COALESCE(com_state, CASE WHEN last_com IS NULL THEN 5 ELSE 1 END), trash_sequence_number, registration_id, now() "
    f"FROM {STATUS.source} "
    "ON CONFLICT (device_id) DO UPDATE SET "
    f"sequence_number = CASE WHEN {_FRESH} THEN EXCLUDED.sequence_number "
    "ELSE COALESCE(EXCLUDED.sequence_number, device_status.sequence_number) END, "
    f"last_com = CASE WHEN {_FRESH} THEN EXCLUDED.last_com "
    "ELSE GREATEST(EXCLUDED.last_com, device_status.last_com) END, "
    f"lqi = CASE WHEN {_FRESH} OR $9::boolean THEN EXCLUDED.lqi ELSE device_status.lqi END, "
    f"last_computed_location = CASE WHEN {_FRESH} THEN EXCLUDED.last_computed_location "
    "ELSE COALESCE(EXCLUDED.last_computed_location, device_status.last_computed_location) END, "
    f"com_state = CASE WHEN {_FRESH} OR $10::boolean THEN "
    "(CASE WHEN NOT $10::boolean AND EXCLUDED.last_com IS NOT NULL THEN 1 ELSE EXCLUDED.com_state END) "
    "WHEN device_status.com_state = 5 AND EXCLUDED.last_com IS NOT NULL THEN 1 ELSE device_status.com_state END, "
    f"trash_sequence_number = CASE WHEN {_FRESH} THEN EXCLUDED.trash_sequence_number "
    "ELSE COALESCE(EXCLUDED.trash_sequence_number, device_status.trash_sequence_number) END, "
    "registration_id = GREATEST(EXCLUDED.registration_id, device_status.registration_id), "
    "updated_at = now() "
    "WHERE EXCLUDED.registration_id IS NULL OR device_status.registration_id IS NULL "
    "OR EXCLUDED.registration_id >= device_status.registration_id")


@dataclass
class Rows:
    """What some records write: rows per table, and per device the `device_status` fields they set.

    The rows of one record are built completely before they join a batch's, so
    a record that cannot be read leaves nothing behind; those of a batch are
    merged in order (the latest value of a field wins, `last_com` keeps the
    greatest), which is what writing the records one by one would give.
    """

    messages: list[tuple] = field(default_factory=list)
    advanced: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    attempts: list[tuple] = field(default_factory=list)  # send id first
    undelivered: list[tuple] = field(default_factory=list)
    downlinks: list[tuple] = field(default_factory=list)  # DOWNLINK_UPSERT's columns
    # (device, registration) -> the device_status fields set for that registration
    status: dict[tuple[str, int | None], dict[str, Any]] = field(default_factory=dict)
    succeeded: dict[str, int] = field(default_factory=dict)  # callback -> latest success (ms)
    given_up: list[tuple[str, int]] = field(default_factory=list)  # (callback, its schedule's start, ms)

    TABLES = ("messages", "advanced", "events", "attempts", "undelivered", "downlinks")

    def device(self, device: str, registration: int | None) -> dict[str, Any]:
        """The status fields of a device's registration (see oss.storage.registrations)."""
        return self.status.setdefault((device, registration), {})

    def add(self, other: "Rows") -> None:
        for table in self.TABLES:
            getattr(self, table).extend(getattr(other, table))
        for (device, registration), fields in other.status.items():
            st = self.device(device, registration)
            for name, value in fields.items():
                st[name] = max(st.get(name) or 0, value) if name == "last_com" else value
        for callback, at in other.succeeded.items():
            self.succeeded[callback] = max(self.succeeded.get(callback, 0), at)
        self.given_up.extend(other.given_up)

    def __bool__(self) -> bool:
        return (any(getattr(self, t) for t in self.TABLES) or bool(self.status) or bool(self.succeeded)
                or bool(self.given_up))


class StoreStage(Stage):
    name = "store"
    group = "backhaul-store"
    tick_interval_s = 0.2

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__()
        self.pool = pool
        self._t_messages = topic(MESSAGES)
        self._t_advanced = topic(MESSAGES_ADVANCED)
        self._t_events = topic(DEVICE_EVENTS)
        self._t_results = topic(DELIVERY_RESULTS)
        self._t_downlinks = topic(DOWNLINKS)
        self._t_transmissions = topic(DOWNLINK_TRANSMISSIONS)
        self.topics = (self._t_messages, self._t_advanced, self._t_events, self._t_results, self._t_downlinks,
                       self._t_transmissions)
        # The rows of each record of the batch in hand, kept until they are written.
        self._pending: list[tuple[ConsumerRecord, Rows]] = []

    def process(self, batch: Batch) -> list[Out]:
        self._pending = []
        return self.each_record(batch, self._read)

    def _read(self, tp: TopicPartition, rec: ConsumerRecord, outputs: list[Out]) -> None:
        rows = Rows()
        if tp.topic == self._t_messages:
            message = decode_message(rec.value)
            if not message.get("duplicate"):
                self._message(message, rows)
        elif tp.topic == self._t_advanced:
            self._advanced(decode_advanced_message(rec.value), rows)
        elif tp.topic == self._t_events:
            self._event(decode_device_event(rec.value), rows)
        elif tp.topic == self._t_downlinks:
            self._downlink(decode_downlink(rec.value), rows, granted=True)
        elif tp.topic == self._t_transmissions:
            self._downlink(decode_transmission(rec.value), rows, granted=False)
        else:
            self._result(results.decode_delivery_result(rec.value), rows)
        if rows:
            self._pending.append((rec, rows))

    def _message(self, m: Message, rows: Rows) -> None:
        rinfo = {"baseStation": m["station"], "rssi": m["rssi"], "snr": m["snr"], "freq": m["freq"],
                 "rep": 1}
        rows.messages.append((m["id"], m["device"], m.get("deviceTypeId"), m["time"], m["seqNumber"],
                              m["data"], m.get("ack", False), [rinfo], m.get("overQuota", False),
                              m.get("registrationId")))
        st = rows.device(m["device"], m.get("registrationId"))
        st["seq"] = m["seqNumber"]
        st["last_com"] = m["time"]

    def _advanced(self, a: AdvancedMessage, rows: Rows) -> None:
        rows.advanced.append((a["messageId"], a["device"], a.get("deviceTypeId"), a["time"], a["seqNumber"],
                              a["data"], a.get("ack", False), a["rinfos"], a["nbFrames"], a["linkQuality"],
                              a["computedLocation"], a.get("registrationId")))
        st = rows.device(a["device"], a.get("registrationId"))
        st["lqi"] = a["linkQuality"]
        if a["computedLocation"].get("status") == 1:
            st["location"] = a["computedLocation"]

    def _event(self, e: DeviceEvent, rows: Rows) -> None:
        registration = e.get("registrationId")
        rows.events.append((e["id"], e["device"], e["type"], e["time"], e, registration))
        if e["type"] in COM_STATE:
            rows.device(e["device"], registration)["com_state"] = COM_STATE[e["type"]]
        elif e["type"] == "OUT_OF_SEQUENCE":
            rows.device(e["device"], registration)["trash"] = e["deviceMessageSeqnumber"]
        elif e["type"] == "ACKNOWLEDGE" and e.get("messageId"):
            rows.downlinks.append((
                e["messageId"], e["device"], registration, e.get("uplinkTime") or e["time"], None,
                e.get("downlinkData"), e.get("station"), None, None, None, e.get("infoCode"), e.get("infoMessage"),
                e.get("downlinkAck"), e.get("downlinkOverusage"), e["time"]))

    def _downlink(self, d: Downlink, rows: Rows, *, granted: bool) -> None:
        """A grant (`granted`) or a transmission of the downlink of uplink `d["id"]`."""
        rows.downlinks.append((
            d["id"], d["device"], d.get("registrationId"), d.get("uplinkTime") or d.get("createdAt") or d["transmitBy"],
            d.get("source"), d.get("data"), None if granted else d.get("station"), None if granted else d.get("rssi"),
            d.get("createdAt") if granted else None, None if granted else d.get("leftAt"),
            None, None, None, None, None))

    def _result(self, r: results.DeliveryResult, rows: Rows) -> None:
        sending = results.is_sending(r)
        rows.attempts.append((results.send_key(r), r["deliveryId"], r.get("messageId"), r["device"],
                              r["callbackId"], r.get("sentAt") or r["time"], None if sending else r["status"],
                              results.SENDING_INFO if sending else r.get("info"), r.get("latencyMs"),
                              r.get("errorClass"), r.get("answer"), r.get("registrationId")))
        if sending:
            return
        if r.get("errorClass") == "ok":
            rows.succeeded[r["callbackId"]] = max(rows.succeeded.get(r["callbackId"], 0), r["time"])
        if r.get("dead"):
            d = r.get("delivery") or cast(Delivery, {})
            rows.given_up.append((r["callbackId"], int(schedule_start_ms(d) if d.get("createdAt") else r["time"])))
            callback = undelivered_callback(d)
            rows.undelivered.append((
                r["deliveryId"], r["device"], r.get("deviceTypeId"), r.get("groupId"), r["callbackId"],
                r.get("messageId"), int(message_time_ms(d) or r["time"]), d.get("data"), d.get("snr"), r["status"],
                r.get("info"), callback, d.get("variables") or {}, d, r.get("registrationId")))

    async def persist(self) -> None:  # pragma: no mutate block (PostgreSQL only: README "Testing")
        """Write the batch in one transaction; if PostgreSQL refuses a row for its data, write
        the records one by one and dead-letter those it refuses. Unreachable: raised, tried again."""
        pending = self._pending
        if not pending:
            return
        started = time.monotonic()
        batch = Rows()
        for _, rows in pending:
            batch.add(rows)
        try:
            await self._write(batch)
        except POSTGRES_REFUSED as exc:
            log.warning("PostgreSQL refused a row of the batch: writing its records one by one",
                        extra={"records": len(pending), "errorType": type(exc).__name__, "error": str(exc)[:300]})
            for rec, rows in pending:
                try:
                    await self._write(rows)
                except POSTGRES_REFUSED as refused:
                    self.dead_letter(rec, refused)
        self._pending = []
        metrics.STORE_BATCH_SECONDS.observe(time.monotonic() - started)

    async def _write(self, rows: Rows) -> None:  # pragma: no mutate block (PostgreSQL only)
        """Write `rows` in one transaction (every statement idempotent), one statement per table (see
        `Columns`; an upsert once more per repetition of a key, see `rounds`)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if rows.messages:
                await conn.execute(MESSAGE_INSERT, *MESSAGE.arrays(rows.messages))
            for advanced in rounds(rows.advanced):
                await conn.execute(ADVANCED_UPSERT, *ADVANCED.arrays(advanced))
            if rows.events:
                await conn.execute(EVENT_INSERT, *EVENT.arrays(rows.events))
            if rows.attempts:
                sends = merged_sends(rows.attempts)
                written = await conn.fetch(ATTEMPT_UPSERT, *SEND.arrays(sends))
                if later := later_sends(written):
                    await conn.execute(CLOSE_INTERRUPTED, later, INTERRUPTED_INFO)
            if rows.undelivered:
                await conn.execute(UNDELIVERED_INSERT, *UNDELIVERED.arrays(rows.undelivered))
            for downlinks in rounds(rows.downlinks):
                await conn.execute(DOWNLINK_UPSERT, *DOWNLINK.arrays(downlinks))
            if rows.succeeded:
                await conn.execute(
                    "INSERT INTO callback_health(callback_id, last_success_at) SELECT * FROM unnest($1::text[], "
                    "$2::bigint[]) ON CONFLICT (callback_id) DO UPDATE SET last_success_at = "
                    "GREATEST(callback_health.last_success_at, EXCLUDED.last_success_at)",
                    list(rows.succeeded), [int(t) for t in rows.succeeded.values()])
                await conn.execute("UPDATE callbacks SET dead = false WHERE id = ANY($1::text[]) AND dead",
                                   sorted(rows.succeeded))
            if rows.given_up:
                await conn.execute(
                    "UPDATE callbacks c SET dead = true FROM unnest($1::text[], $2::bigint[]) AS g(id, started) "
                    "WHERE c.id = g.id AND NOT c.dead AND NOT EXISTS (SELECT 1 FROM callback_health h "
                    "WHERE h.callback_id = g.id AND h.last_success_at >= g.started)",
                    [c for c, _ in rows.given_up], [t for _, t in rows.given_up])
            for status, sets_lqi, sets_com_state in status_statements(rows.status):
                await conn.execute(STATUS_UPSERT, *STATUS.arrays(status), sets_lqi, sets_com_state)
        for table in Rows.TABLES:
            if getattr(rows, table):
                metrics.STORED.labels(table).inc(len(getattr(rows, table)))


def rounds(rows: list[tuple]) -> list[list[tuple]]:
    """Rows keyed by their first field, in rounds where no key comes twice, a key's rows in their order
    across the rounds. An upsert cannot change a row twice in one statement (ON CONFLICT DO UPDATE
    refuses it), and rows of different keys never change the same row: writing the rounds in turn, one
    statement each, is writing the rows one by one. A batch seldom holds a key twice (a record read
    again; a downlink's grant, transmission and ACKNOWLEDGE; a device's two registrations), and then
    adds a statement for each repetition rather than a second copy of the upsert's merge in Python."""
    out: list[list[tuple]] = []
    seen: dict[Any, int] = {}
    for row in rows:
        n = seen[row[0]] = seen.get(row[0], -1) + 1
        if n == len(out):
            out.append([])
        out[n].append(row)
    return out


def status_statements(status: dict[tuple[str, int | None], dict[str, Any]]) -> list[tuple[list[tuple], bool, bool]]:
    """The `STATUS_UPSERT`s of a batch's device status: (rows, whether they set the lqi, whether they set
    the com_state), a device once per statement (`rounds`: two registrations of a device in a batch are
    written in the order the batch met them) and the rows of a statement alike in what they set."""
    statements: list[tuple[list[tuple], bool, bool]] = []
    for part in rounds([(device, s.get("seq"), s.get("last_com"), s.get("lqi"), s.get("location"),
                         s.get("com_state"), s.get("trash"), registration)
                        for (device, registration), s in status.items()]):
        alike: dict[tuple[bool, bool], list[tuple]] = {}
        for row in part:
            alike.setdefault((row[3] is not None, row[5] is not None), []).append(row)
        statements += [(rows, sets_lqi, sets_com_state) for (sets_lqi, sets_com_state), rows in alike.items()]
    return statements


def later_sends(written: list[Any]) -> list[str]:
    """The sends written (ATTEMPT_UPSERT's rows) that are not their delivery's first: only those can
    close an earlier one left open."""
    return [row["send_id"] for row in written if row["attempt"] > 1]


def merged_sends(attempts: list[tuple]) -> list[tuple]:
    """The rows of a batch's sends in announcement order, a send's completion replacing its
    announcement (one row write instead of two when both are in the batch)."""
    by_send: dict[str, tuple] = {}
    for row in attempts:
        if row[0] not in by_send or row[6] is not None:  # row[6]: status, None while sending
            by_send[row[0]] = row
    return list(by_send.values())


def undelivered_callback(delivery: Delivery) -> dict[str, Any]:
    """The `callback` of an undelivered record, in the Sigfox shape, never with credentials:
    url, method, headers, body, contentType for HTTP; recipient, subject, message for e-mail; the channel,
    topic, body and contentType for the channels with settings (MQTT, KAFKA, ...: their destination and
    secrets stay in the callback)."""
    if "publish" in delivery:
        return {"channel": delivery["channel"], **delivery["publish"]}
    if "email" in delivery:
        mail = delivery["email"]
        return {"recipient": mail["recipient"], "subject": mail["subject"], "message": mail["body"]}
    return {k: v for k, v in (delivery.get("request") or {}).items() if k != "auth"}
