"""The SQL builders every storage module uses.

- `Where`: conditions joined by AND, each value passed as a numbered argument;
- `select_page`: a SELECT of one page (`limit` + 1 rows, to know whether another follows);
- `insert`: an INSERT of the given columns;
- `upsert`: an INSERT of the given columns that updates the row whose key is taken;
- `update`: an UPDATE of the changed columns of one row.

Table and column names come from our code, never from a request; every value
from a request is an argument (`$n`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import asyncpg

# What runs a query: a connection (inside a transaction, usually) or the pool.
Executor = Union[asyncpg.Connection, asyncpg.Pool]


@dataclass(frozen=True)
class Page:
    """Which slice of a list: `limit` rows after `offset`."""

    limit: int
    offset: int

    @property
    def fetch(self) -> int:
        """Rows to ask for: one more than the page, to know whether another follows."""
        return self.limit + 1


@dataclass(frozen=True)
class Window:
    """A time filter in epoch ms: from `since` (included) to `before` (excluded); None is open."""

    since: int | None = None
    before: int | None = None


class Where:
    """Conditions joined by AND, with their arguments numbered in order ($1, $2, ...)."""

    def __init__(self, *args: Any) -> None:
        self.args: list[Any] = list(args)
        self.conditions: list[str] = []

    def param(self, value: Any) -> str:
        """Add an argument; its placeholder (`$n`) for a condition."""
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, condition: str) -> None:
        self.conditions.append(condition)

    def within(self, column: str, window: Window) -> None:
        """Keep the rows whose `column` falls in `window`."""
        if window.since is not None:
            self.add(f"{column} >= {self.param(window.since)}")
        if window.before is not None:
            self.add(f"{column} < {self.param(window.before)}")

    def __str__(self) -> str:
        return " AND ".join(self.conditions) or "true"


async def select_page(db: Executor, select: str, where: Where, order: str, page: Page) -> list[asyncpg.Record]:
    """`select` (a SELECT ... FROM ...) filtered by `where`, sorted by `order`: one page and one row more."""
    return await db.fetch(f"{select} WHERE {where} ORDER BY {order} LIMIT {page.fetch} OFFSET {page.offset}",
                          *where.args)


async def insert(db: Executor, table: str, values: dict[str, Any]) -> None:
    """INSERT one row of the given columns."""
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await db.execute(f"INSERT INTO {table}({', '.join(values)}) VALUES ({placeholders})", *values.values())


async def upsert(db: Executor, table: str, key: tuple[str, ...], values: dict[str, Any], *,
                 stamped: bool = False) -> None:
    """INSERT one row of the given columns; where a row with the same `key` columns exists, update the others
    (and `updated_at`, when `stamped`)."""
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    sets = [f"{c} = EXCLUDED.{c}" for c in values if c not in key] or [f"{key[0]} = EXCLUDED.{key[0]}"]
    if stamped:
        sets.append("updated_at = now()")
    await db.execute(f"INSERT INTO {table}({', '.join(values)}) VALUES ({placeholders}) "
                     f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(sets)}", *values.values())


async def update(db: Executor, table: str, ident: Any, changes: dict[str, Any], *, edited_by: str | None = None,
                 stamped: bool = True) -> None:
    """UPDATE the changed columns of the row `id = ident`; nothing when there is no change.

    `edited_by` is recorded as `last_edited_by`; `stamped` sets `updated_at` (tables that have it).
    """
    if not changes:
        return
    args = [ident, *changes.values()]
    sets = [f"{column} = ${i}" for i, column in enumerate(changes, start=2)]
    if edited_by is not None:
        args.append(edited_by)
        sets.append(f"last_edited_by = ${len(args)}")
    if stamped:
        sets.append("updated_at = now()")
    await db.execute(f"UPDATE {table} SET {', '.join(sets)} WHERE id = $1", *args)
