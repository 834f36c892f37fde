"""API users: machine credentials bound to a group and profiles (the secret is kept as a scrypt hash)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from oss.storage.scope import fetch_scoped, in_subtree
from oss.storage.sql import Executor, Order, Page, Where, insert, select_page, update


async def credentials(db: Executor, login: str) -> asyncpg.Record | None:
    """What authentication needs of an API user: `group_id`, `profile_ids`, `secret_hash`."""
    return await db.fetchrow("SELECT group_id, profile_ids, secret_hash FROM api_users WHERE id = $1", login)


async def scoped(db: Executor, root: str, ident: str) -> asyncpg.Record:
    return await fetch_scoped(db, f"SELECT * FROM api_users WHERE id = $2 AND {in_subtree('group_id', '$1')}",
                              root, ident, what="API user")


@dataclass(frozen=True)
class Filter:
    """Which API users a list shows: holding `profile_id`, in `group_ids`; empty is no filter."""

    profile_id: str | None = None
    group_ids: list[str] = field(default_factory=list)


async def page(db: Executor, root: str, pg: Page, wanted: Filter) -> list[asyncpg.Record]:
    """API users of `root`'s subtree, filtered, by id."""
    where = Where(root)
    where.add(in_subtree("group_id", "$1"))
    if wanted.profile_id:
        where.add(f"{where.param(wanted.profile_id)} = ANY(profile_ids)")
    if wanted.group_ids:
        where.add(f"group_id = ANY({where.param(wanted.group_ids)})")
    return await select_page(db, "SELECT * FROM api_users", where, Order(key="id"), pg)


async def create(db: Executor, values: dict[str, Any]) -> None:
    await insert(db, "api_users", values)


async def edit(db: Executor, ident: str, changes: dict[str, Any]) -> None:
    await update(db, "api_users", ident, changes, stamped=False)


async def remove_profile(db: Executor, ident: str, profile_id: str) -> None:
    await db.execute("UPDATE api_users SET profile_ids = array_remove(profile_ids, $2) WHERE id = $1",
                     ident, profile_id)


async def delete(db: Executor, ident: str) -> None:
    await db.execute("DELETE FROM api_users WHERE id = $1", ident)
