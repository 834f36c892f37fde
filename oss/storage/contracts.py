"""Contracts (order lines, `contract_infos`) and their tokens.

A caller sees the contracts of its subtree and of its ancestors (a contract
bought higher up serves the groups below); it changes only those of its subtree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from oss.storage.devices import live_token
from oss.storage.scope import fetch_scoped, in_subtree
from oss.storage.sql import Executor, Order, Page, Where, insert, select_page, update

# Every contract column and its tokens in use at $2 (epoch ms).
VIEW = f"""SELECT c.*, (SELECT count(*) FROM devices d WHERE d.contract_id = c.id AND {live_token(now='$2')})
    AS tokens_in_use FROM contract_infos c"""


def visible(param: str = "$1") -> str:
    """SQL: the contract's group is in the caller's subtree or above the caller's group."""
    return (f"({in_subtree('c.group_id', param)} OR "
            f"c.group_id IN (SELECT unnest(path) FROM groups WHERE id = {param}))")


async def visible_to(db: Executor, root: str, ident: str, now: int) -> asyncpg.Record:
    """The contract (`VIEW`) if `root` may see it, else 404."""
    return await fetch_scoped(db, f"{VIEW} WHERE c.id = $3 AND {visible()}", root, now, ident, what="contract")


async def scoped(db: Executor, root: str, ident: str, now: int) -> asyncpg.Record:
    """The contract (`VIEW`) if it belongs to `root`'s subtree, else 404."""
    return await fetch_scoped(db, f"{VIEW} WHERE c.id = $3 AND {in_subtree('c.group_id', '$1')}", root, now, ident,
                              what="contract")


async def group_of_visible(db: Executor, root: str, ident: str) -> str | None:
    """The group of the contract if `root` may see it, else None."""
    return await db.fetchval(f"SELECT c.group_id FROM contract_infos c WHERE c.id = $2 AND {visible()}", root, ident)


@dataclass(frozen=True)
class Filter:
    """Which contracts a list shows: `name` in their name; of `group_id` (`deep`: or below it, `up`: or above
    it); of `order_ids`, `contract_ids`; running at some time from `from_time` on, started before `to_time`;
    of `token_duration`. Empty is no filter."""

    name: str | None = None
    group_id: str | None = None
    deep: bool = False
    up: bool = False
    order_ids: list[str] = field(default_factory=list)
    contract_ids: list[str] = field(default_factory=list)
    from_time: int | None = None
    to_time: int | None = None
    token_duration: int | None = None


async def page(db: Executor, root: str, now: int, pg: Page, wanted: Filter) -> list[asyncpg.Record]:
    """Contracts `root` may see (`VIEW` at `now`), filtered, by id."""
    where = Where(root, now)
    where.add(visible())
    if wanted.name:
        where.add(f"lower(c.name) LIKE {where.param(f'%{wanted.name.lower()}%')}")
    if wanted.group_id:
        group = where.param(wanted.group_id)
        scopes = [f"c.group_id = {group}"]
        if wanted.deep:
            scopes.append(in_subtree("c.group_id", group))
        if wanted.up:
            scopes.append(f"c.group_id IN (SELECT unnest(path) FROM groups WHERE id = {group})")
        where.add(f"({' OR '.join(scopes)})")
    if wanted.order_ids:
        where.add(f"c.order_id = ANY({where.param(wanted.order_ids)})")
    if wanted.contract_ids:
        where.add(f"c.contract_id = ANY({where.param(wanted.contract_ids)})")
    for value, condition in ((wanted.from_time, "coalesce(c.communication_end_time, 9e18) >= "),
                             (wanted.to_time, "c.start_time < "), (wanted.token_duration, "c.token_duration = ")):
        if value is not None:
            where.add(f"{condition}{where.param(value)}")
    return await select_page(db, VIEW, where, Order(key="c.id"), pg)


async def create(db: Executor, values: dict[str, Any]) -> None:
    await insert(db, "contract_infos", values)


async def edit(db: Executor, ident: str, changes: dict[str, Any], *, edited_by: str) -> None:
    await update(db, "contract_infos", ident, changes, edited_by=edited_by)


async def in_use(db: Executor, ident: str) -> bool:
    """Whether a device type or a device refers to the contract."""
    return await db.fetchval("SELECT EXISTS (SELECT 1 FROM device_types WHERE contract_id = $1) OR "
                             "EXISTS (SELECT 1 FROM devices WHERE contract_id = $1)", ident)


async def delete(db: Executor, ident: str) -> None:
    await db.execute("DELETE FROM contract_infos WHERE id = $1", ident)


async def get(db: Executor, ident: str | None, *, lock: bool = False) -> asyncpg.Record | None:
    """The contract's row (locked for update with `lock`), whoever owns it."""
    return await db.fetchrow(f"SELECT * FROM contract_infos WHERE id = $1{' FOR UPDATE' if lock else ''}", ident)


async def get_many(db: Executor, ids: list[str]) -> dict[str, asyncpg.Record]:
    """Contract rows by id, whoever owns them."""
    return {r["id"]: r for r in await db.fetch("SELECT * FROM contract_infos WHERE id = ANY($1)", ids)}


async def token_duration(db: Executor, ident: str) -> int | None:
    """The contract's token duration in months (0: unlimited); None when there is no such contract."""
    return await db.fetchval("SELECT token_duration FROM contract_infos WHERE id = $1", ident)


async def count_taken(db: Executor, ident: str, tokens: int) -> None:
    """Count `tokens` more tokens taken from the contract (`tokens_used`)."""
    await db.execute("UPDATE contract_infos SET tokens_used = tokens_used + $2 WHERE id = $1", ident, tokens)


async def summaries(db: Executor, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Minimal views (`id`, `name`) by id, for `fields=` expansions."""
    return {r["id"]: dict(r) for r in await db.fetch("SELECT id, name FROM contract_infos WHERE id = ANY($1)", ids)}
