"""Users: people holding profiles on groups (user roles). A caller sees the users holding a role in its
subtree, and only those roles."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from oss.storage.scope import fetch_scoped, in_groups, subtree
from oss.storage.sql import Executor, Order, Page, Where, insert, select_page, update

SORTS = {"id": Order(key="u.id"), "-id": Order(key="u.id DESC"),
         "name": Order(by=("lower(u.last_name)", "lower(u.first_name)"), key="u.id"),
         "-name": Order(by=("lower(u.last_name) DESC", "lower(u.first_name) DESC"), key="u.id"),
         "email": Order(by=("lower(u.email)",), key="u.id"),
         "-email": Order(by=("lower(u.email) DESC",), key="u.id")}
# The user holds a role in the subtree of the group $1.
VISIBLE = f"EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id AND r.group_id IN {subtree('$1')})"


async def scoped(db: Executor, root: str, ident: str) -> asyncpg.Record:
    return await fetch_scoped(db, f"SELECT * FROM users u WHERE u.id = $2 AND {VISIBLE}", root, ident, what="user")


@dataclass(frozen=True)
class Filter:
    """Which users a list shows: `text` in their name or e-mail, holding `profile_id`, with a role on one of
    `group_ids` (`deep`: or below one); empty is no filter."""

    text: str | None = None
    profile_id: str | None = None
    group_ids: list[str] = field(default_factory=list)
    deep: bool = False


async def page(db: Executor, root: str, pg: Page, wanted: Filter, sort: str) -> list[asyncpg.Record]:
    """Users holding a role in `root`'s subtree, filtered, sorted by one of `SORTS`."""
    where = Where(root)
    where.add(VISIBLE)
    if wanted.text:
        like = where.param(f"%{wanted.text.lower()}%")
        where.add(f"(lower(u.first_name || ' ' || u.last_name) LIKE {like} OR lower(u.email) LIKE {like})")
    if wanted.profile_id:
        where.add(f"EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id "
                  f"AND r.profile_id = {where.param(wanted.profile_id)})")
    if wanted.group_ids:
        where.add(f"EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id "
                  f"AND {in_groups('r.group_id', where.param(wanted.group_ids), deep=wanted.deep)})")
    return await select_page(db, "SELECT u.* FROM users u", where, SORTS[sort], pg)


async def roles(db: Executor, root: str, user_ids: list[str]) -> list[asyncpg.Record]:
    """The roles of these users on groups of `root`'s subtree."""
    return await db.fetch(f"SELECT * FROM user_roles WHERE user_id = ANY($2) AND group_id IN {subtree('$1')} "
                          "ORDER BY group_id, profile_id", root, user_ids)


async def create(db: Executor, values: dict[str, Any]) -> bool:
    """A new user; False when one with the same e-mail exists."""
    try:
        await insert(db, "users", values)
    except asyncpg.UniqueViolationError:
        return False
    return True


async def edit(db: Executor, ident: str, changes: dict[str, Any]) -> None:
    await update(db, "users", ident, changes, stamped=False)


async def add_roles(db: Executor, user_id: str, roles: list[tuple[str, str]]) -> None:
    """Give the user these (group, profile) roles; roles it holds already are kept."""
    await db.executemany("INSERT INTO user_roles(user_id, group_id, profile_id) VALUES ($1, $2, $3) "
                         "ON CONFLICT DO NOTHING", [(user_id, g, p) for g, p in roles])


async def remove_roles(db: Executor, root: str, user_id: str, *, profile_id: str | None = None,
                       group_id: str | None = None) -> None:
    """Remove the user's roles in `root`'s subtree (of one profile, on one group, when given)."""
    await db.execute(f"DELETE FROM user_roles WHERE user_id = $2 AND group_id IN {subtree('$1')} "
                     "AND ($3::text IS NULL OR profile_id = $3) AND ($4::text IS NULL OR group_id = $4)",
                     root, user_id, profile_id, group_id)


async def delete_if_roleless(db: Executor, ident: str) -> None:
    """Delete the user once it holds no role anywhere."""
    await db.execute("DELETE FROM users WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM user_roles WHERE user_id = $1)",
                     ident)
