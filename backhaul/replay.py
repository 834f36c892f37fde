"""Replay of undelivered callbacks, by device, callback or time range (the CLI's `backhaul replay` and the
API's `.../callbacks-not-delivered/replay`, so it lives in the runtime both stand on).

Each undelivered record keeps the exact rendered request; replaying puts it
back on the `deliveries` topic as a new delivery (`<id>#r<n>`) whose
`webhook-id` stays the original one, so a receiver that de-duplicates still can.
A replay gets a retry schedule of its own, from the time it is replayed
(`scheduleFrom`).
The record holds no secret: the delivery worker sends it with the callback's
current credentials, secret headers and signing secret.
A record is replayed once: it is marked `replayed_at` (and left out of the next
replay) once Kafka acknowledged its new delivery; a replay that fails again
comes back to the undelivered list under its new id.
"""
from __future__ import annotations

import logging
import time

import asyncpg

from backhaul import db
from backhaul.kafka import Out, make_producer, send_all
from backhaul.topics import topic
from schemas.deliveries import delivery_key, encode_delivery, replayed
from schemas.topics import DELIVERIES

log = logging.getLogger(__name__)
PENDING = (
    "SELECT delivery_id, delivery FROM undelivered_callbacks WHERE replayed_at IS NULL "
    "AND ($1::text IS NULL OR device_id = $1) AND ($2::text IS NULL OR callback_id = $2) "
    "AND ($3::bigint IS NULL OR time >= $3) AND ($4::bigint IS NULL OR time < $4) "
    # never the history of a deleted device (see oss.storage.registrations)
    "AND NOT EXISTS (SELECT 1 FROM device_registrations r WHERE r.id = registration_id AND r.purged) "
    "ORDER BY time")


async def replay_undelivered(*, device: str | None = None, callback: str | None = None,
                             since: int | None = None, before: int | None = None,
                             pool: asyncpg.Pool | None = None) -> int:
    """Re-queue matching undelivered callbacks not replayed yet; returns how many."""
    own = pool is None
    used = pool or await db.create_pool()
    producer = make_producer()
    await producer.start()
    try:
        rows = await used.fetch(PENDING, device.upper() if device else None, callback, since, before)
        now_ms = int(time.time() * 1000)
        records = []
        for r in rows:
            d = replayed(r["delivery"], now_ms)
            records.append(Out(topic(DELIVERIES), delivery_key(d), encode_delivery(d)))
        await send_all(producer, records)
        await used.execute("UPDATE undelivered_callbacks SET replayed_at = now() WHERE delivery_id = ANY($1)",
                           [r["delivery_id"] for r in rows])
        log.info("undelivered callbacks replayed", extra={"count": len(rows)})
        return len(rows)
    finally:
        await producer.stop()
        if own:
            await used.close()
