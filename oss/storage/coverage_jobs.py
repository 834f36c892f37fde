"""Coverage bulk jobs: the request, its state and, once computed, its answer (schemas/sql/016)."""
from __future__ import annotations

from typing import Any, Final

import asyncpg
import orjson

from oss.storage.scope import fetch_scoped, in_subtree
from oss.storage.sql import Executor

KEEP_DAYS: Final = 7   # jobs older than this are purged when a new one is created


async def create(db: Executor, ident: str, group_id: str, request: dict[str, Any]) -> None:
    """A new running job; jobs older than KEEP_DAYS go at the same time."""
    await db.execute("DELETE FROM coverage_jobs WHERE created_at < now() - make_interval(days => $1)", KEEP_DAYS)
    await db.execute("INSERT INTO coverage_jobs(id, group_id, request) VALUES ($1, $2, $3::text::jsonb)",
                     ident, group_id, orjson.dumps(request).decode())


async def request_of(db: Executor, ident: str) -> dict[str, Any] | None:
    """The request of a job still running (None once it is done, failed or gone)."""
    raw = await db.fetchval("SELECT request::text FROM coverage_jobs WHERE id = $1 AND state = 'running'", ident)
    return None if raw is None else orjson.loads(raw)


async def finish(db: Executor, ident: str, result_json: bytes, *, failed: bool = False) -> bool:
    """Store a running job's result (JSON) and end it; False when it had already ended (another process)."""
    status = await db.execute(
        "UPDATE coverage_jobs SET state = $2, result = $3::text::jsonb, done_at = now() "
        "WHERE id = $1 AND state = 'running'", ident, "failed" if failed else "done", result_json.decode())
    return status.endswith(" 1")


async def running(db: Executor) -> list[str]:
    """The ids of the jobs not finished, oldest first."""
    return [r["id"] for r in await db.fetch(
        "SELECT id FROM coverage_jobs WHERE state = 'running' ORDER BY created_at")]


async def scoped(db: Executor, root: str, ident: str) -> asyncpg.Record:
    """`state`, `created_at`, `done_at` and `result` (JSON text) of a job of `root`'s subtree, else 404."""
    return await fetch_scoped(
        db, "SELECT id, state, created_at, done_at, result::text AS result FROM coverage_jobs "
            f"WHERE id = $2 AND {in_subtree('group_id', '$1')}", root, ident, what="job")
