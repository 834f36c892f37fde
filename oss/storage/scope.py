"""The scope rule in SQL: a caller sees its own group and the groups below it, nothing else.

Anything outside that subtree answers 404, exactly as if it did not exist.
"""
from __future__ import annotations

import asyncpg

from oss.errors import NotFound
from oss.storage.sql import Executor


def subtree(param: str) -> str:
    """SQL for the ids of the group given as `param` and all its sub-groups."""
    return f"(SELECT id FROM groups WHERE id = {param} OR path @> ARRAY[{param}]::text[])"


def in_subtree(column: str, param: str) -> str:
    return f"{column} IN {subtree(param)}"


def in_groups(column: str, param: str, *, deep: bool) -> str:
    """SQL: `column` is one of the groups of the array `param`, or (`deep`) below one of them."""
    if not deep:
        return f"{column} = ANY({param})"
    return f"({column} = ANY({param}) OR {column} IN (SELECT id FROM groups WHERE path && {param}::text[]))"


async def fetch_scoped(db: Executor, sql: str, *args: object,
                       what: str = "resource") -> asyncpg.Record:  # pragma: no mutate block (PostgreSQL)
    """Run a query already restricted to the caller's subtree; 404 when it finds nothing."""
    row = await db.fetchrow(sql, *args)
    if row is None:
        raise NotFound(f"The requested {what} was not found.")
    return row
