"""PostgreSQL access: the connection pool and the versioned migrations."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources

import asyncpg

from backhaul.callback_secrets import seal_clear_rows
from backhaul.settings import settings

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x6261636B
# Steps SQL cannot do (sealing needs the operator's key), run right after their file, in its transaction.
DATA_STEPS: dict[str, Callable[[asyncpg.Connection], Awaitable[None]]] = {
    "007_sealed_secrets.sql": seal_clear_rows,
}


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every migration in schemas/sql, in order."""
    folder = resources.files("schemas") / "sql"
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name, p.read_text()) for p in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations not yet applied; idempotent and safe to run concurrently."""
    applied_now = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, sql in migration_files():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                if name in DATA_STEPS:
                    await DATA_STEPS[name](conn)
                await conn.execute("INSERT INTO schema_migrations(name) VALUES ($1)", name)
            log.info("migration applied", extra={"migration": name})
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def connect(dsn: str | None = None) -> asyncpg.Connection:
    return await asyncpg.connect(dsn or settings().database_url)


@asynccontextmanager
async def migrated(dsn: str | None = None) -> AsyncIterator[asyncpg.Connection]:
    """One connection to a database brought up to date (the command-line tools' way in)."""
    conn = await connect(dsn)
    try:
        await migrate(conn)
        yield conn
    finally:
        await conn.close()


async def create_pool(dsn: str | None = None, *, min_size: int = 1, max_size: int = 10,
                      server_settings: dict[str, str] | None = None) -> asyncpg.Pool:
    """A pool whose connections decode jsonb as Python objects (`server_settings`: PostgreSQL settings of
    its sessions)."""
    import orjson

    async def init(conn: asyncpg.Connection) -> None:
        await conn.set_type_codec("jsonb", encoder=lambda v: orjson.dumps(v).decode(),
                                  decoder=orjson.loads, schema="pg_catalog")

    return await asyncpg.create_pool(dsn or settings().database_url, min_size=min_size,
                                     max_size=max_size, init=init, server_settings=server_settings)
