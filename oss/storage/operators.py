"""Operators: a group of type 0 (SO) is a network operator; its settings live in `operators`.

A group without a settings row is an operator all the same: what was never set is left out of its
answer, but for the three values every operator has (`VIEW`'s defaults: no automatic closing of
upgrade campaigns, warranty by the manufacturer, a public network). The first update writes the row.
"""
from __future__ import annotations

from typing import Any

import asyncpg

from oss.storage.scope import fetch_scoped, in_subtree
from oss.storage.sql import Executor, Order, Page, Where, select_page, upsert

OPERATOR_GROUP_TYPE = 0  # SO
# An operator group with its settings (NULL columns where nothing was set yet).
VIEW = """SELECT g.id, coalesce(o.auto_close_campaign, false) AS auto_close_campaign, o.transmitter_power,
    o.min_db, o.max_db, o.alert_time, o.request_tracker_base_url, o.telecommunication_standard, o.antenna_model,
    coalesce(o.warranty_mode, 0) AS warranty_mode, coalesce(o.network_type, 0) AS network_type,
    o.last_edited_by, o.updated_at FROM groups g LEFT JOIN operators o ON o.group_id = g.id"""


async def scoped(db: Executor, root: str, ident: str) -> asyncpg.Record:
    """The operator if its group lies in `root`'s subtree, else 404."""
    return await fetch_scoped(db, f"{VIEW} WHERE g.id = $2 AND g.type = {OPERATOR_GROUP_TYPE} AND "
                                  f"{in_subtree('g.id', '$1')}", root, ident, what="operator")


async def serving(db: Executor, root: str, ident: str) -> asyncpg.Record:
    """The operator if it is `root`'s group, lies below it or above it (the operator a customer's group is
    under), else 404."""
    return await fetch_scoped(db, f"{VIEW} WHERE g.id = $2 AND g.type = {OPERATOR_GROUP_TYPE} AND "
                                  f"({in_subtree('g.id', '$1')} OR "
                                  "EXISTS (SELECT 1 FROM groups me WHERE me.id = $1 AND g.id = ANY(me.path)))",
                              root, ident, what="operator")


async def nearest_id(db: Executor, root: str) -> str | None:
    """The operator `root`'s group is, or the nearest one above it; None when there is none."""
    return await db.fetchval(
        f"SELECT g.id FROM groups me JOIN groups g ON g.id = me.id OR g.id = ANY(me.path) "
        f"WHERE me.id = $1 AND g.type = {OPERATOR_GROUP_TYPE} ORDER BY cardinality(g.path) DESC LIMIT 1", root)


async def page(db: Executor, root: str, pg: Page) -> list[asyncpg.Record]:
    """The operators of `root`'s subtree, by id."""
    where = Where(root)
    where.add(in_subtree("g.id", "$1"))
    where.add(f"g.type = {OPERATOR_GROUP_TYPE}")
    return await select_page(db, VIEW, where, Order(key="g.id"), pg)


async def save(db: Executor, group_id: str, changes: dict[str, Any], *, edited_by: str) -> None:
    """Write the changed settings of an operator (its row is made by the first change)."""
    await upsert(db, "operators", ("group_id",), {"group_id": group_id, **changes, "last_edited_by": edited_by},
                 stamped=True)
