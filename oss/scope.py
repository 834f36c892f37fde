"""Scoping: a caller sees its own group and the groups below it, nothing else.

Anything outside that subtree answers 404, exactly as if it did not exist.
"""
from __future__ import annotations

import asyncpg

from oss.errors import NotFound


def subtree(param: str) -> str:
    """SQL for the ids of the group given as `param` and all its sub-groups."""
    return f"(SELECT id FROM groups WHERE id = {param} OR path @> ARRAY[{param}]::text[])"


def in_subtree(column: str, param: str) -> str:
    return f"{column} IN {subtree(param)}"


async def fetch_scoped(conn: asyncpg.Connection, sql: str, *args: object, what: str = "resource") -> asyncpg.Record:
    """Run a query already restricted to the caller's subtree; 404 when it finds nothing."""
    row = await conn.fetchrow(sql, *args)
    if row is None:
        raise NotFound(f"The requested {what} was not found.")
    return row


async def group_in_scope(conn: asyncpg.Connection, root: str, group_id: str) -> asyncpg.Record:
    """The group row if it lies in `root`'s subtree, else 404."""
    return await fetch_scoped(
        conn, f"SELECT * FROM groups WHERE id = $2 AND {in_subtree('id', '$1')}", root, group_id, what="group")
