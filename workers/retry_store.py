"""Deliveries waiting for a later attempt, kept in PostgreSQL.

A waiting retry must survive a worker restart and must not hold back the
Kafka offsets of the deliveries behind it, so it leaves the stream: the row
is written (durably) before the delivery's offset may be committed. Any
worker claims due rows with SKIP LOCKED; a claim expires, so the rows of a
worker that died are taken up again.
"""
from __future__ import annotations

import time
from typing import Any

import asyncpg


class RetryStore:
    def __init__(self, pool: asyncpg.Pool, *, claim_s: float = 30.0) -> None:
        self.pool = pool
        self.claim_s = claim_s

    async def schedule(self, delivery: dict[str, Any], attempts: int, delay_s: float) -> None:
        """Keep `delivery` until `delay_s` from now; `attempts` already made."""
        await self.pool.execute(
            "INSERT INTO delivery_retries(delivery_id, due_at, attempts, delivery) "
            "VALUES ($1, to_timestamp($2), $3, $4) "
            "ON CONFLICT (delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at, attempts = EXCLUDED.attempts, "
            "delivery = EXCLUDED.delivery, claimed_until = NULL",
            delivery["id"], time.time() + delay_s, attempts, delivery)

    async def claim_due(self, limit: int = 500) -> list[tuple[dict[str, Any], int]]:
        """Due deliveries, claimed for `claim_s`: (delivery, attempts made)."""
        rows = await self.pool.fetch(
            "UPDATE delivery_retries SET claimed_until = now() + make_interval(secs => $2) "
            "WHERE delivery_id IN (SELECT delivery_id FROM delivery_retries "
            "  WHERE due_at <= now() AND (claimed_until IS NULL OR claimed_until < now()) "
            "  ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
            "RETURNING delivery, attempts", limit, self.claim_s)
        return [(r["delivery"], r["attempts"]) for r in rows]

    async def finish(self, delivery_id: str) -> None:
        await self.pool.execute("DELETE FROM delivery_retries WHERE delivery_id = $1", delivery_id)

    async def waiting(self) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM delivery_retries")
