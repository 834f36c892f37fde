"""A private corner of the local stack for one benchmark: its own topic prefix and database.

Inside `sandbox()` this process's settings point at the prefix and the
database (so the simulator and the ceilings use them), and `Sandbox.env`
carries the same to the worker subprocesses. On exit the topics and the
database are deleted and the environment is restored.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from backhaul import db
from backhaul import settings as settings_module
from backhaul.kafka import ensure_topics, make_admin
from backhaul.secretbox import ensure_dev_key_file
from backhaul.settings import settings


@dataclass
class Sandbox:
    tag: str
    prefix: str
    database: str
    dsn: str
    env: dict[str, str]


def with_database(dsn: str, database: str) -> str:
    """The same PostgreSQL URL pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@contextlib.asynccontextmanager
async def sandbox(extra_env: dict[str, str] | None = None, *, keep: bool = False) -> AsyncIterator[Sandbox]:
    """Create a prefix and a database, migrate, create topics; remove them afterwards unless `keep`."""
    tag = uuid.uuid4().hex[:8]
    if not (settings().secret_keys or settings().secret_key_file):
        ensure_dev_key_file()  # the delivery workers refuse to start without a key (development tooling makes one)
    base_dsn = settings().database_url
    admin_dsn = with_database(base_dsn, "postgres")
    database = f"bh_bench_{tag}"
    dsn = with_database(base_dsn, database)
    # The bench's receivers listen on 127.0.0.1: allowed explicitly (the destination rule refuses loopback).
    env = {"BACKHAUL_TOPIC_PREFIX": f"bench.{tag}.", "BACKHAUL_DATABASE_URL": dsn,
           "BACKHAUL_CALLBACK_ALLOW_NETWORKS": "127.0.0.1/32", **(extra_env or {})}
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    settings_module.settings.cache_clear()
    try:
        await ensure_topics()
        conn = await db.connect()
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        yield Sandbox(tag, env["BACKHAUL_TOPIC_PREFIX"], database, dsn, env)
    finally:
        prefix = env["BACKHAUL_TOPIC_PREFIX"]
        if not keep:
            with contextlib.suppress(Exception):
                await delete_topics(prefix)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        settings_module.settings.cache_clear()
        if not keep:
            admin = await asyncpg.connect(admin_dsn)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await admin.close()


async def delete_topics(prefix: str) -> None:
    """Delete every topic whose name starts with `prefix`."""
    admin = make_admin()
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()
