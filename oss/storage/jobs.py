"""Bulk jobs: their input rows, their progress chunk by chunk, and their per-row errors."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg

from oss.errors import NotFound
from oss.storage.scope import fetch_scoped, in_subtree
from oss.storage.sql import Executor

ENTITY, SYSTEM = 0, 1  # error types
# (row number, entity, field, message) of one refused row
ErrorRow = tuple[int, str | None, str | None, str]


def _text(value: str | None) -> str | None:
    """PostgreSQL text holds no NUL; an error text is kept short."""
    return None if value is None else value.replace("\x00", "\\u0000")[:500]


async def create(db: Executor, ident: str, kind: str, group_id: str, api_user_id: str, params: dict[str, Any],
                 rows_json: str, total: int) -> None:
    """A new job with its rows (JSON text), its heartbeat starting now."""
    await db.execute("INSERT INTO bulk_jobs(id, kind, group_id, api_user_id, params, rows, total, heartbeat) "
                     "VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, now())", ident, kind, group_id, api_user_id,
                     params, rows_json, total)


async def save_errors(db: Executor, job_id: str, errors: Iterable[ErrorRow]) -> None:
    """Record refused rows (a row already recorded with the same message is kept once)."""
    await db.executemany(
        "INSERT INTO bulk_job_errors(job_id, row, entity, field, message, type) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT DO NOTHING",
        [(job_id, row, _text(entity), _text(field), _text(message), ENTITY) for row, entity, field, message in errors])


async def load(db: Executor, ident: str) -> asyncpg.Record:
    """What running the job needs: `kind`, `group_id`, `api_user_id`, `params` and `rows` (JSON text)."""
    return await db.fetchrow("SELECT kind, group_id, api_user_id, params, rows::text AS rows FROM bulk_jobs "
                             "WHERE id = $1", ident)


async def lock_progress(db: Executor, ident: str) -> int | None:
    """How many rows the job has processed, locking it for this chunk; None once it is done."""
    return await db.fetchval("SELECT processed FROM bulk_jobs WHERE id = $1 AND NOT job_done FOR UPDATE", ident)


async def advance(db: Executor, ident: str, processed: int, success: int, done: bool) -> None:
    """Count a chunk: rows processed, rows that succeeded; `done` finishes the job."""
    await db.execute("UPDATE bulk_jobs SET processed = processed + $2, success = success + $3, heartbeat = now(), "
                     "job_done = $4, finished_at = CASE WHEN $4 THEN now() END WHERE id = $1",
                     ident, processed, success, done)


async def stop(db: Executor, ident: str, message: str) -> None:
    """Finish the job on a system error, recorded with `message`."""
    await db.execute("INSERT INTO bulk_job_errors(job_id, row, message, type) VALUES ($1, 0, $2, $3) "
                     "ON CONFLICT DO NOTHING", ident, message, SYSTEM)
    await db.execute("UPDATE bulk_jobs SET job_done = true, finished_at = now() WHERE id = $1", ident)


async def take_over_stale(db: Executor, stale_s: int) -> list[str]:
    """Claim the unfinished jobs whose heartbeat is older than `stale_s` seconds (their process stopped)."""
    rows = await db.fetch("UPDATE bulk_jobs SET heartbeat = now() WHERE NOT job_done AND "
                          f"(heartbeat IS NULL OR heartbeat < now() - interval '{int(stale_s)} seconds') RETURNING id")
    return [r["id"] for r in rows]


async def scoped(db: Executor, root: str, ident: str, kinds: tuple[str, ...] | None = None) -> asyncpg.Record:
    """A job of `root`'s subtree (of one of `kinds`, when given) with its progress, else 404."""
    job = await fetch_scoped(db, f"SELECT id, kind, total, success, job_done, "
                                 f"total - jsonb_array_length(rows) + processed AS processed, "
                                 f"(SELECT count(*) FROM bulk_job_errors e WHERE e.job_id = j.id) AS nb_errors "
                                 f"FROM bulk_jobs j WHERE id = $2 AND {in_subtree('group_id', '$1')}",
                             root, ident, what="job")
    if kinds and job["kind"] not in kinds:
        raise NotFound("The requested job was not found.")
    return job


async def errors(db: Executor, job_id: str, limit: int) -> list[asyncpg.Record]:
    """The job's refused rows, in row order."""
    return await db.fetch("SELECT row, entity, field, message, type FROM bulk_job_errors WHERE job_id = $1 "
                          "ORDER BY row LIMIT $2", job_id, limit)
