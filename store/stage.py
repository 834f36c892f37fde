"""The store stage: messages, aggregates, device events and delivery results -> PostgreSQL.

Rows are written in one transaction per batch, every statement idempotent
(stable ids, ON CONFLICT), and the offsets are committed after the
transaction: a replayed batch writes nothing twice. A record that cannot be
read is dead-lettered; a row PostgreSQL refuses for its data (a NUL character,
a number out of range) makes the batch be written again record by record, and
the records it still refuses are dead-lettered: no record blocks a partition.
While PostgreSQL is unreachable the batch waits and is tried again.

A callback is marked `dead` when one of its deliveries exhausts its retries,
and no longer dead when one of its deliveries succeeds again (the latest
result of a batch decides).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from backhaul import metrics
from backhaul.failures import POSTGRES_REFUSED
from backhaul.kafka import Out
from backhaul.stage import Batch, Stage
from schemas.topics import DELIVERY_RESULTS, DEVICE_EVENTS, MESSAGES, MESSAGES_ADVANCED, topic

log = logging.getLogger(__name__)

COM_STATE = {"ERROR": 3, "RESTORED": 1}

# A device's radio status belongs to its registration: a later registration replaces the row
# (a device registered again starts NOT_SEEN), an earlier one (records still in flight after a
# delete or a transfer) never touches it, and the same one merges into it.
_FRESH = "EXCLUDED.registration_id > device_status.registration_id"
STATUS_UPSERT = (
    "INSERT INTO device_status(device_id, sequence_number, last_com, lqi, last_computed_location, com_state, "
    "trash_sequence_number, registration_id, updated_at) "
    "VALUES ($1,$2,$3,COALESCE($4,4),$5,COALESCE($6,5),$7,$8,now()) "
    "ON CONFLICT (device_id) DO UPDATE SET "
    f"sequence_number = CASE WHEN {_FRESH} THEN EXCLUDED.sequence_number "
    "ELSE COALESCE(EXCLUDED.sequence_number, device_status.sequence_number) END, "
    f"last_com = CASE WHEN {_FRESH} THEN EXCLUDED.last_com "
    "ELSE GREATEST(EXCLUDED.last_com, device_status.last_com) END, "
    f"lqi = CASE WHEN {_FRESH} OR $4 IS NOT NULL THEN EXCLUDED.lqi ELSE device_status.lqi END, "
    f"last_computed_location = CASE WHEN {_FRESH} THEN EXCLUDED.last_computed_location "
    "ELSE COALESCE(EXCLUDED.last_computed_location, device_status.last_computed_location) END, "
    f"com_state = CASE WHEN {_FRESH} OR $6 IS NOT NULL THEN "
    "(CASE WHEN $6 IS NULL AND EXCLUDED.last_com IS NOT NULL THEN 1 ELSE EXCLUDED.com_state END) "
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
    attempts: list[tuple] = field(default_factory=list)
    undelivered: list[tuple] = field(default_factory=list)
    # (device, registration) -> the device_status fields set for that registration
    status: dict[tuple[str, int | None], dict[str, Any]] = field(default_factory=dict)
    dead: dict[str, bool] = field(default_factory=dict)

    TABLES = ("messages", "advanced", "events", "attempts", "undelivered")

    def device(self, device: str, registration: int | None) -> dict[str, Any]:
        """The status fields of a device's registration (see oss.registrations)."""
        return self.status.setdefault((device, registration), {})

    def add(self, other: "Rows") -> None:
        for table in self.TABLES:
            getattr(self, table).extend(getattr(other, table))
        for (device, registration), fields in other.status.items():
            st = self.device(device, registration)
            for name, value in fields.items():
                st[name] = max(st.get(name) or 0, value) if name == "last_com" else value
        self.dead.update(other.dead)

    def __bool__(self) -> bool:
        return any(getattr(self, t) for t in self.TABLES) or bool(self.status) or bool(self.dead)


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
        self.topics = (self._t_messages, self._t_advanced, self._t_events, self._t_results)
        # The rows of each record of the batch in hand, kept until they are written.
        self._pending: list[tuple[ConsumerRecord, Rows]] = []

    def process(self, batch: Batch) -> list[Out]:
        self._pending = []
        return self.each_record(batch, self._read)

    def _read(self, tp: TopicPartition, rec: ConsumerRecord, outputs: list[Out]) -> None:
        r = orjson.loads(rec.value)
        rows = Rows()
        if tp.topic == self._t_messages:
            if not r.get("duplicate"):
                self._message(r, rows)
        elif tp.topic == self._t_advanced:
            self._advanced(r, rows)
        elif tp.topic == self._t_events:
            self._event(r, rows)
        else:
            self._result(r, rows)
        if rows:
            self._pending.append((rec, rows))

    def _message(self, m: dict, rows: Rows) -> None:
        rinfo = {"baseStation": m["station"], "rssi": m["rssi"], "snr": m["snr"], "freq": m["freq"],
                 "rep": 1}
        rows.messages.append((m["id"], m["device"], m.get("deviceTypeId"), m["time"], m["seqNumber"],
                              m["data"], m.get("ack", False), [rinfo], m.get("overQuota", False),
                              m.get("registrationId")))
        st = rows.device(m["device"], m.get("registrationId"))
        st["seq"] = m["seqNumber"]
        st["last_com"] = m["time"]

    def _advanced(self, a: dict, rows: Rows) -> None:
        rows.advanced.append((a["messageId"], a["device"], a.get("deviceTypeId"), a["time"], a["seqNumber"],
                              a["data"], a.get("ack", False), a["rinfos"], a["nbFrames"], a["linkQuality"],
                              a["computedLocation"], a.get("registrationId")))
        st = rows.device(a["device"], a.get("registrationId"))
        st["lqi"] = a["linkQuality"]
        if a["computedLocation"].get("status") == 1:
            st["location"] = a["computedLocation"]

    def _event(self, e: dict, rows: Rows) -> None:
        registration = e.get("registrationId")
        rows.events.append((e["id"], e["device"], e["type"], e["time"], e, registration))
        if e["type"] in COM_STATE:
            rows.device(e["device"], registration)["com_state"] = COM_STATE[e["type"]]
        elif e["type"] == "OUT_OF_SEQUENCE":
            rows.device(e["device"], registration)["trash"] = e["deviceMessageSeqnumber"]

    def _result(self, r: dict, rows: Rows) -> None:
        rows.attempts.append((r["deliveryId"], r["attempt"], r.get("messageId"), r["device"], r["callbackId"],
                              r["time"], r["status"], r.get("info"), r.get("latencyMs"), r.get("errorClass"),
                              r.get("answer"), r.get("registrationId")))
        if r.get("dead") or r.get("errorClass") == "ok":
            rows.dead[r["callbackId"]] = bool(r.get("dead"))
        if r.get("dead"):
            d = r.get("delivery") or {}
            callback = undelivered_callback(d)
            rows.undelivered.append((
                r["deliveryId"], r["device"], r.get("deviceTypeId"), r.get("groupId"), r["callbackId"],
                r.get("messageId"), r["time"], d.get("data"), d.get("snr"), r["status"], r.get("info"),
                callback, d.get("variables") or {}, d, r.get("registrationId")))

    async def persist(self) -> None:
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

    async def _write(self, rows: Rows) -> None:
        """Write `rows` in one transaction (every statement idempotent)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if rows.messages:
                await conn.executemany(
                    "INSERT INTO messages(id, device_id, device_type_id, time, seq_number, data, ack_required, "
                    "rinfos, over_quota, registration_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) "
                    "ON CONFLICT (id) DO NOTHING",
                    rows.messages)
            if rows.advanced:
                await conn.executemany(
                    "INSERT INTO messages(id, device_id, device_type_id, time, seq_number, data, ack_required, "
                    "rinfos, nb_frames, lqi, computed_location, registration_id) "
                    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) "
                    "ON CONFLICT (id) DO UPDATE SET rinfos = EXCLUDED.rinfos, nb_frames = EXCLUDED.nb_frames, "
                    "lqi = EXCLUDED.lqi, computed_location = EXCLUDED.computed_location", rows.advanced)
            if rows.events:
                await conn.executemany(
                    "INSERT INTO device_events(id, device_id, type, time, body, registration_id) "
                    "VALUES ($1,$2,$3,$4,$5,$6) "
                    "ON CONFLICT (id) DO NOTHING", rows.events)
            if rows.attempts:
                await conn.executemany(
                    "INSERT INTO callback_attempts(delivery_id, attempt, message_id, device_id, callback_id, time, "
                    "status, info, latency_ms, error_class, answer, registration_id) "
                    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) "
                    "ON CONFLICT (delivery_id, attempt) DO NOTHING", rows.attempts)
            if rows.undelivered:
                await conn.executemany(
                    "INSERT INTO undelivered_callbacks(delivery_id, device_id, device_type_id, group_id, "
                    "callback_id, message_id, time, data, snr, status, message, callback, parameters, delivery, "
                    "registration_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) "
                    "ON CONFLICT (delivery_id) DO NOTHING",
                    rows.undelivered)
            if rows.dead:
                await conn.executemany("UPDATE callbacks SET dead = $2 WHERE id = $1 AND dead <> $2",
                                       sorted(rows.dead.items()))
            if rows.status:
                await conn.executemany(STATUS_UPSERT, [
                    (d, s.get("seq"), s.get("last_com"), s.get("lqi"), s.get("location"), s.get("com_state"),
                     s.get("trash"), registration) for (d, registration), s in rows.status.items()])
        for table in Rows.TABLES:
            if getattr(rows, table):
                metrics.STORED.labels(table).inc(len(getattr(rows, table)))


def undelivered_callback(delivery: dict[str, Any]) -> dict[str, Any]:
    """The `callback` of an undelivered record, in the Sigfox shape, never with credentials:
    url, method, headers, body, contentType for HTTP; recipient, subject, message for e-mail."""
    if "email" in delivery:
        mail = delivery["email"]
        return {"recipient": mail["recipient"], "subject": mail["subject"], "message": mail["body"]}
    return {k: v for k, v in (delivery.get("request") or {}).items() if k != "auth"}
