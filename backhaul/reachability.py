"""Whether this process reaches Kafka and PostgreSQL, checked every few seconds.

Exported as `backhaul_infrastructure_up{dependency}` (1 or 0) by every worker
process, for the dependencies its roles use, so an outage shows on every
process's metrics even where no step has failed yet (an idle consumer does not
fail while the broker is away: it waits). The checks are small: Kafka's metadata
of one topic, PostgreSQL's `SELECT 1` (through the process's pool when it has
one, which also tells whether the pool reconnects). The steps that fail during
an outage are counted in `backhaul_infrastructure_errors_total{stage,dependency}`
where they are retried (`backhaul.stage`, the relay, the delivery worker).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Protocol

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from backhaul import metrics
from backhaul.kafka import make_admin
from backhaul.settings import settings
from backhaul.topics import topic
from schemas.topics import FRAMES

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0
CHECK_TIMEOUT_S = 3.0


class Check(Protocol):
    """Raises when the dependency is not reached; `close` lets go of what it holds."""

    async def __call__(self) -> None: ...

    async def close(self) -> None: ...


class KafkaCheck:
    """Asks the broker for one topic's metadata, on one admin client kept between checks."""

    def __init__(self) -> None:
        self._admin: AIOKafkaAdminClient | None = None

    async def __call__(self) -> None:
        if self._admin is None:
            admin = make_admin(request_timeout_ms=int(CHECK_TIMEOUT_S * 1000))
            try:
                await admin.start()
            except BaseException:
                await admin.close()
                raise
            self._admin = admin
        await self._admin.describe_topics([topic(FRAMES)])

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()


class PostgresCheck:
    """`SELECT 1` through the process's pool, or on a connection of its own (opened again when lost)."""

    def __init__(self, pool: asyncpg.Pool | None) -> None:
        self._pool = pool
        self._conn: asyncpg.Connection | None = None

    async def __call__(self) -> None:
        if self._pool is not None:
            await self._pool.fetchval("SELECT 1")
            return
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(settings().database_url, timeout=CHECK_TIMEOUT_S)
        await self._conn.fetchval("SELECT 1")

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.terminate()


async def watch(checks: Mapping[str, Check], every_s: float = CHECK_EVERY_S) -> None:
    """Run every check every `every_s` and keep `backhaul_infrastructure_up` current (until cancelled)."""
    up: dict[str, bool] = {}
    try:
        while True:
            for dependency, check in checks.items():
                try:
                    await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
                    reached = True
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001  (any failure means: not reached now)
                    reached = False
                    error = f"{type(exc).__name__}: {exc}"[:300]
                before = up.get(dependency)
                if before != reached and (before is not None or not reached):
                    # Logged on change only: an outage is one line when it starts and one when it ends.
                    (log.info if reached else log.warning)(
                        f"{dependency} {'reachable' if reached else 'unreachable'}",
                        extra={"dependency": dependency, **({} if reached else {"error": error})})
                up[dependency] = reached
                metrics.INFRA_UP.labels(dependency).set(1 if reached else 0)
            await asyncio.sleep(every_s)
    finally:
        for check in checks.values():
            with contextlib.suppress(Exception):
                await check.close()
