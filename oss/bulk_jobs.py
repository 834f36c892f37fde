"""Asynchronous bulk jobs: stored with their rows, run in chunks, resumable, with per-row errors.

Each chunk commits its device changes, its errors and the job's progress in
one transaction, so a job interrupted by a restart resumes exactly after its
last committed chunk (any API process picks up jobs whose heartbeat is stale).
A dry run is the same work in a transaction that is rolled back.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import orjson

from backhaul.tasks import TaskSet
from oss import device_operations
from oss.auth import Caller
from oss.clock import new_id, now_ms
from oss.device_operations import Row, RowError
from oss.storage import device_types, jobs

log = logging.getLogger(__name__)
STALE_S = 30
EDIT_FLAGS = ("activable", "automaticRenewal", "prototype")  # a CSV edit's values for every row (query)


class _Rollback(Exception):
    pass


async def apply(conn: asyncpg.Connection, who: Caller, kind: str, params: dict[str, Any],
                rows: list[Row]) -> tuple[int, list[RowError]]:
    """Run one operation on some rows inside the current transaction."""
    now = now_ms()
    if kind in ("create", "transfer"):
        device_type = await device_types.get(conn, params["deviceTypeId"])
        if device_type is None:
            return 0, [RowError(n, r.get("id"), "deviceTypeId", "device type not found") for n, r in rows]
        if kind == "create":
            return await device_operations.create(
                conn, who, device_type, rows, now, prototype=params.get("prototype", False),
                certificate=params.get("certificate"), prefix=params.get("prefix", ""))
        defaults: dict[str, Any] = {k: params[k] for k in ("keepHistory", "activable") if k in params}
        return await device_operations.transfer(conn, who, device_type, [(n, {**defaults, **r}) for n, r in rows], now)
    if kind == "edit":
        flags = {k: params[k] for k in EDIT_FLAGS if k in params}
        return await device_operations.edit(conn, who, [(n, {**flags, **r}) for n, r in rows])
    if kind in ("suspend", "resume"):
        return await device_operations.set_suspended(conn, who, rows, kind == "suspend")
    if kind in ("restart", "unsubscribe", "replace"):
        return await getattr(device_operations, kind)(conn, who, rows, now)
    if kind == "delete":
        return await device_operations.delete(conn, who, rows)
    raise ValueError(f"unknown bulk operation {kind}")


async def dry_run(pool: asyncpg.Pool, who: Caller, kind: str, params: dict[str, Any],
                  rows: list[Row]) -> tuple[int, list[RowError]]:
    """What the operation would do, with nothing written."""
    result: tuple[int, list[RowError]] = (0, [])
    try:
        async with pool.acquire() as conn, conn.transaction():
            result = await apply(conn, who, kind, params, rows)
            raise _Rollback
    except _Rollback:
        pass
    return result


class JobRunner:
    """Runs this process's bulk jobs as tasks."""

    def __init__(self, pool: asyncpg.Pool, chunk: int) -> None:
        self.pool = pool
        self.chunk = max(1, chunk)
        self._tasks = TaskSet()

    async def submit(self, who: Caller, kind: str, params: dict[str, Any], rows: list[Row],
                     errors: list[RowError]) -> tuple[str, int]:
        """Store a job (rows already found bad are recorded now) and start it."""
        job_id, total = new_id(), len(rows) + len(errors)
        async with self.pool.acquire() as conn, conn.transaction():
            await jobs.create(conn, job_id, kind, who.group_id, who.api_user_id, params, orjson.dumps(rows).decode(),
                              total)
            await jobs.save_errors(conn, job_id, errors)
        self._start(job_id)
        return job_id, total

    def _start(self, job_id: str) -> None:
        self._tasks.start(self.run(job_id))

    async def run(self, job_id: str) -> None:
        try:
            job = await jobs.load(self.pool, job_id)
            rows = [(n, r) for n, r in orjson.loads(job["rows"])]
            who = Caller(job["api_user_id"], job["group_id"], frozenset())
            while await self._chunk(job_id, who, job["kind"], job["params"], rows):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bulk job failed", extra={"job": job_id})
            async with self.pool.acquire() as conn, conn.transaction():
                await jobs.stop(conn, job_id, "internal error; the job stopped")

    async def _chunk(self, job_id: str, who: Caller, kind: str, params: dict[str, Any], rows: list[Row]) -> bool:
        """Process the next chunk; False once the job is done."""
        async with self.pool.acquire() as conn, conn.transaction():
            processed = await jobs.lock_progress(conn, job_id)
            if processed is None:
                return False
            part = rows[processed: processed + self.chunk]
            success, errors = await apply(conn, who, kind, params, part) if part else (0, [])
            await jobs.save_errors(conn, job_id, errors)
            done = processed + len(part) >= len(rows)
            await jobs.advance(conn, job_id, len(part), success, done)
            return not done

    async def resume(self) -> None:
        """Take over jobs left unfinished by a stopped process."""
        for job_id in await jobs.take_over_stale(self.pool, STALE_S):
            self._start(job_id)

    async def close(self) -> None:
        await self._tasks.cancel()

    async def wait(self) -> None:
        """Until every running job has finished (tests and shutdown)."""
        await self._tasks.wait()
