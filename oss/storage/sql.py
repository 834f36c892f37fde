"""The SQL builders every storage module uses.

- `Where`: conditions joined by AND, each value passed as a numbered argument;
- `select_page`: a SELECT of one page (`limit` + 1 rows, to know whether another follows), the one
  place lists are paged; `select_newest`: the same for time-ordered lists, with the next page's cursor;
- `insert`: an INSERT of the given columns;
- `upsert`: an INSERT of the given columns that updates the row whose key is taken;
- `update`: an UPDATE of the changed columns of one row.

Table and column names come from our code, never from a request; every value
from a request is an argument (`$n`).

Paging never repeats or skips a row:
- an entity list (devices, groups, users...) is sorted by an `Order`, whose last
  column is unique in the list, so rows never tie and an offset lands on the same
  row on every request (rows created or deleted meanwhile still move the rest);
- a time-ordered list (messages, locations, undelivered callbacks) is sorted
  `NewestFirst`: time descending, then a unique key descending, and its next page
  starts after a `Cursor` (the last row's time and key), not at an offset, so rows
  written while a client pages, however many and at whatever time, move nothing:
  each row is listed once, in the one page whose bounds hold it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import asyncpg

# What runs a query: a connection (inside a transaction, usually) or the pool.
Executor = Union[asyncpg.Connection, asyncpg.Pool]


@dataclass(frozen=True)
class Cursor:
    """Where a page of a `NewestFirst` list starts: just after the row of this `time` and `key`."""

    time: int
    key: str


@dataclass(frozen=True)
class Page:
    """Which slice of a list: `limit` rows after `offset` rows, counted from just after `after` when set."""

    limit: int
    offset: int = 0
    after: Cursor | None = None

    @property
    def fetch(self) -> int:
        """Rows to ask for: one more than the page, to know whether another follows."""
        return self.limit + 1


@dataclass(frozen=True)
class Order:
    """A total order for an entity list: `by` (values may tie), then `key`, a column unique in the list.

    `key` may carry a direction (`"d.id DESC"`).
    """

    key: str
    by: tuple[str, ...] = ()

    def __str__(self) -> str:
        return ", ".join((*self.by, self.key))


@dataclass(frozen=True)
class NewestFirst:
    """The order of a time-ordered list: `time` descending, ties by `key` (unique in the list) descending.

    Both are plain column names: they are read back from the rows to make the next page's cursor.
    """

    key: str
    time: str = "time"

    def __str__(self) -> str:
        return f"{self.time} DESC, {self.key} DESC"

    def cursor(self, row: asyncpg.Record) -> Cursor:
        """The cursor of the page that starts after `row`."""
        return Cursor(row[self.time], row[self.key])


@dataclass(frozen=True)
class CursorPage:
    """A page of a `NewestFirst` list: `rows` (one more than the page when another follows) and `after`,
    the cursor of the page's last row when another page follows."""

    rows: list[asyncpg.Record]
    after: Cursor | None


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


async def select_page(db: Executor, select: str, where: Where, order: Order | NewestFirst,
                      page: Page) -> list[asyncpg.Record]:
    """`select` (a SELECT ... FROM ...) filtered by `where`, sorted by `order`: one page and one row more.

    A page with a cursor (`page.after`) starts just after it (a condition added to `where`), which only a
    `NewestFirst` order allows.
    """
    if page.after is not None:
        if not isinstance(order, NewestFirst):
            raise TypeError("a cursor pages only a NewestFirst list")
        time, key = where.param(page.after.time), where.param(page.after.key)
        # The first condition alone can use an index on time; the second is the exact bound.
        where.add(f"{order.time} <= {time} AND ({order.time}, {order.key}) < ({time}, {key})")
    return await db.fetch(f"{select} WHERE {where} ORDER BY {order} LIMIT {page.fetch} OFFSET {page.offset}",
                          *where.args)


async def select_newest(db: Executor, select: str, where: Where, order: NewestFirst, page: Page) -> CursorPage:
    """`select_page` of a time-ordered list, with the cursor of the page that follows."""
    rows = await select_page(db, select, where, order, page)
    return CursorPage(rows, order.cursor(rows[page.limit - 1]) if len(rows) > page.limit else None)


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
