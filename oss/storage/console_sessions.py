"""Console sessions and the links that set a password (invitation, reset), by the SHA-256 of their token.

The tokens themselves never reach the database: a read of these tables hands nothing over.
"""
from __future__ import annotations

from typing import Any

import asyncpg

from oss.storage.sql import Executor


async def create(db: Executor, token_hash: str, user_id: str, group_id: str, csrf: str, now: int) -> None:
    await db.execute("INSERT INTO console_sessions(token_hash, user_id, group_id, csrf, created_at, last_seen) "
                     "VALUES ($1, $2, $3, $4, $5, $5)", token_hash, user_id, group_id, csrf, now)


async def find(db: Executor, token_hash: str) -> asyncpg.Record | None:
    """The session with the user it belongs to (`locked`, `terms_accepted_at`, names, e-mail)."""
    return await db.fetchrow(
        "SELECT s.*, u.email, u.first_name, u.last_name, u.locked, u.terms_accepted_at, u.timezone "
        "FROM console_sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1", token_hash)


async def touch(db: Executor, token_hash: str, now: int) -> None:
    await db.execute("UPDATE console_sessions SET last_seen = $2 WHERE token_hash = $1", token_hash, now)


async def switch_group(db: Executor, token_hash: str, group_id: str) -> None:
    await db.execute("UPDATE console_sessions SET group_id = $2 WHERE token_hash = $1", token_hash, group_id)


async def delete(db: Executor, token_hash: str) -> None:
    await db.execute("DELETE FROM console_sessions WHERE token_hash = $1", token_hash)


async def delete_of_user(db: Executor, user_id: str, *, keep: str | None = None) -> None:
    """End every session of a user (password changed or reset), except `keep`."""
    await db.execute("DELETE FROM console_sessions WHERE user_id = $1 AND token_hash IS DISTINCT FROM $2",
                     user_id, keep)


async def purge(db: Executor, idle_before: int, created_before: int) -> None:
    """Drop sessions idle since `idle_before` or older than `created_before` (epoch ms)."""
    await db.execute("DELETE FROM console_sessions WHERE last_seen < $1 OR created_at < $2",
                     idle_before, created_before)


async def user_for_login(db: Executor, email: str) -> asyncpg.Record | None:
    """What a login needs of a user found by e-mail (case-insensitive)."""
    return await db.fetchrow("SELECT id, email, password_hash, locked, terms_accepted_at FROM users "
                             "WHERE lower(email) = lower($1)", email)


async def role_groups(db: Executor, user_id: str) -> list[asyncpg.Record]:
    """The groups the user holds a role on (id, name, profile_ids), by name."""
    return await db.fetch(
        "SELECT g.id, g.name, array_agg(r.profile_id ORDER BY r.profile_id) AS profile_ids "
        "FROM user_roles r JOIN groups g ON g.id = r.group_id WHERE r.user_id = $1 "
        "GROUP BY g.id, g.name ORDER BY lower(g.name), g.id", user_id)


async def set_password(db: Executor, user_id: str, password_hash: str, now: int) -> None:
    await db.execute("UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
                     user_id, password_hash, now)


async def password_hash(db: Executor, user_id: str) -> str | None:
    value: str | None = await db.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    return value


async def accept_terms(db: Executor, user_id: str, now: int) -> None:
    await db.execute("UPDATE users SET terms_accepted_at = $2 WHERE id = $1", user_id, now)


async def logged_in(db: Executor, user_id: str, now: int) -> None:
    await db.execute("UPDATE users SET last_login_time = $2 WHERE id = $1", user_id, now)


async def preferences(db: Executor, user_id: str) -> dict[str, Any]:
    value = await db.fetchval("SELECT console_preferences FROM users WHERE id = $1", user_id)
    return dict(value or {})


async def set_preference(db: Executor, user_id: str, name: str, value: Any) -> None:
    await db.execute("UPDATE users SET console_preferences = console_preferences || jsonb_build_object($2::text, "
                     "$3::jsonb) WHERE id = $1", user_id, name, value)


async def create_link(db: Executor, token_hash: str, user_id: str, purpose: str, expires_at: int) -> None:
    await db.execute("INSERT INTO console_links(token_hash, user_id, purpose, expires_at) VALUES ($1, $2, $3, $4)",
                     token_hash, user_id, purpose, expires_at)


async def use_link(db: Executor, token_hash: str, now: int) -> str | None:
    """Spend a link that is unused and not expired: the user id it was for, else None."""
    value: str | None = await db.fetchval(
        "UPDATE console_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 "
        "RETURNING user_id", token_hash, now)
    return value


async def link_user(db: Executor, token_hash: str, now: int) -> asyncpg.Record | None:
    """The user (id, email) of a usable link, without spending it (the page that asks for the password)."""
    return await db.fetchrow("SELECT u.id, u.email, l.purpose FROM console_links l JOIN users u ON u.id = l.user_id "
                             "WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > $2", token_hash, now)
