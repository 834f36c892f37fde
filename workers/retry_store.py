"""Deliveries waiting for a later attempt, kept in PostgreSQL.

A waiting retry must survive a worker restart and must not hold back the
Kafka offsets of the deliveries behind it, so it leaves the stream: the row
is written (durably) before the delivery's offset may be committed. Any
worker claims due rows with SKIP LOCKED; a claim expires, so the rows of a
worker that died are taken up again.

Each row also says why it waits (`workers.waiting`: reason and sentence, and
since when), which the API shows in the message's `cbStatus`, and for which
endpoint, so that when an endpoint recovers its whole backlog can be claimed
at once, oldest message first (`claim_backlog`).
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import asyncpg

from schemas.deliveries import Delivery, message_time_ms
from workers.waiting import Wait

# (delivery, attempts made); the delivery column is the record as JSON, decoded by the pool's codec
Claimed = list[tuple[Delivery, int]]


class RetryStore:
    def __init__(self, pool: asyncpg.Pool, *, claim_s: float = 30.0) -> None:
        self.pool = pool
        self.claim_s = claim_s

    async def schedule(self, delivery: Delivery, attempts: int, due_s: float, *, endpoint: str | None,
                       wait: Wait) -> None:
        """Keep `delivery` until `due_s` (epoch seconds); `attempts` tries already made; `wait` says why.

        A delivery that keeps waiting for the same reason keeps its `waiting_since`."""
        now_ms = int(time.time() * 1000)
        message_time = message_time_ms(delivery)
        await self.pool.execute(
            "INSERT INTO delivery_retries(delivery_id, due_at, attempts, delivery, endpoint, callback_id, "
            "message_id, registration_id, message_time, reason, info, waiting_since) "
            "VALUES ($1, to_timestamp($2), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
            "ON CONFLICT (delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at, attempts = EXCLUDED.attempts, "
            "delivery = EXCLUDED.delivery, claimed_until = NULL, endpoint = EXCLUDED.endpoint, "
            "reason = EXCLUDED.reason, info = EXCLUDED.info, waiting_since = CASE "
            "WHEN delivery_retries.reason = EXCLUDED.reason THEN delivery_retries.waiting_since "
            "ELSE EXCLUDED.waiting_since END",
            delivery["id"], due_s, attempts, delivery, endpoint, delivery.get("callbackId"),
            delivery.get("messageId"), delivery.get("registrationId"),
            None if message_time is None else int(message_time), wait.reason, wait.info, now_ms)

    async def claim_due(self, limit: int = 500, *, skip_endpoints: Sequence[str] = ()) -> Claimed:
        """Due deliveries, claimed for `claim_s`: (delivery, attempts made). Rows of `skip_endpoints`
        (backlogs being drained) are left to their drain."""
        rows = await self.pool.fetch(
            "UPDATE delivery_retries SET claimed_until = now() + make_interval(secs => $2) "
            "WHERE delivery_id IN (SELECT delivery_id FROM delivery_retries "
            "  WHERE due_at <= now() AND (claimed_until IS NULL OR claimed_until < now()) "
            "  AND (endpoint IS NULL OR NOT endpoint = ANY($3::text[])) "
            "  ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
            "RETURNING delivery, attempts", limit, self.claim_s, list(skip_endpoints))
        return [(r["delivery"], r["attempts"]) for r in rows]

    async def claim_backlog(self, endpoint: str, limit: int) -> Claimed:
        """An endpoint's waiting deliveries, due or not, oldest message first, claimed for `claim_s`."""
        rows = await self.pool.fetch(
            "WITH picked AS (SELECT delivery_id FROM delivery_retries "
            "  WHERE endpoint = $1 AND (claimed_until IS NULL OR claimed_until < now()) "
            "  ORDER BY message_time, delivery_id LIMIT $2 FOR UPDATE SKIP LOCKED) "
            "UPDATE delivery_retries r SET claimed_until = now() + make_interval(secs => $3) "
            "FROM picked WHERE r.delivery_id = picked.delivery_id "
            "RETURNING r.delivery, r.attempts, r.message_time", endpoint, limit, self.claim_s)
        rows = sorted(rows, key=lambda r: (r["message_time"] or 0, r["delivery"]["id"]))
        return [(r["delivery"], r["attempts"]) for r in rows]

    async def oldest_claimed_elsewhere(self, endpoint: str, ours: Sequence[str]) -> dict[str, int]:
        """Per device, the oldest message time of the endpoint's deliveries claimed now, but not in `ours`."""
        rows = await self.pool.fetch(
            "SELECT delivery->>'device' AS device, min(message_time) AS oldest FROM delivery_retries "
            "WHERE endpoint = $1 AND claimed_until >= now() AND NOT delivery_id = ANY($2::text[]) "
            "AND message_time IS NOT NULL GROUP BY 1", endpoint, list(ours))
        return {r["device"]: r["oldest"] for r in rows if r["device"] is not None}

    async def release(self, delivery_ids: Sequence[str]) -> None:
        """Let other claims take these deliveries again (claimed, then not handled)."""
        await self.pool.execute("UPDATE delivery_retries SET claimed_until = NULL WHERE delivery_id = ANY($1::text[])",
                                list(delivery_ids))

    async def claimed(self, endpoint: str) -> int:
        """How many of an endpoint's waiting deliveries are claimed (being handled) right now."""
        return await self.pool.fetchval(
            "SELECT count(*) FROM delivery_retries WHERE endpoint = $1 AND claimed_until >= now()", endpoint)

    async def finish(self, delivery_id: str) -> None:
        await self.pool.execute("DELETE FROM delivery_retries WHERE delivery_id = $1", delivery_id)

    async def waiting(self) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM delivery_retries")

    async def last_success_ms(self, callback_id: str) -> int | None:
        """When a delivery of the callback last succeeded, as the store recorded it (`callback_health`)."""
        return await self.pool.fetchval("SELECT last_success_at FROM callback_health WHERE callback_id = $1",
                                        callback_id)
