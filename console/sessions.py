"""Console sessions: a random token in an HttpOnly cookie, its SHA-256 in PostgreSQL, a CSRF token per session.

A session works in one group (one of the user's role groups) and carries exactly the rights of the
profiles the user holds there: the console's Caller is the API's Caller (oss.auth), so every page is
bound by the same scope and permission checks as the API.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from oss.auth import Caller
from oss.profiles import perms_of
from oss.storage import console_sessions

COOKIE = "bh_console"
PATH = "/console"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class RoleGroup:
    """A group the user holds roles on, with the profiles held there."""

    id: str
    name: str
    profile_ids: tuple[str, ...]


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who, in which group, with which rights."""

    token_hash: str
    user_id: str
    email: str
    name: str
    csrf: str
    group: RoleGroup
    groups: tuple[RoleGroup, ...]
    terms_accepted: bool
    created_at: int
    last_seen: int

    @property
    def caller(self) -> Caller:
        return Caller(self.user_id, self.group.id, perms_of(self.group.profile_ids))

    def csrf_matches(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf, sent or "")


def expired(created_at: int, last_seen: int, now: int, idle_s: float, max_s: float) -> bool:
    """A session ends `idle_s` after its last request, or `max_s` after its login, whichever comes first."""
    return now - last_seen > idle_s * 1000 or now - created_at > max_s * 1000


async def load(db: asyncpg.Pool | asyncpg.Connection, token: str) -> Session | None:
    """The live session of a cookie's token (None: unknown, or its user has no role left or is locked)."""
    hashed = token_hash(token)
    row = await console_sessions.find(db, hashed)
    if row is None or row["locked"]:
        return None
    groups = tuple(RoleGroup(g["id"], g["name"], tuple(g["profile_ids"]))
                   for g in await console_sessions.role_groups(db, row["user_id"]))
    current = next((g for g in groups if g.id == row["group_id"]), None)
    if current is None:
        return None  # the role it worked under was taken away
    name = f"{row['first_name']} {row['last_name']}".strip() or row["email"]
    return Session(hashed, row["user_id"], row["email"], name, row["csrf"], current, groups,
                   row["terms_accepted_at"] is not None, row["created_at"], row["last_seen"])


def set_cookie(response: web.StreamResponse, token: str, *, secure: bool) -> None:
    response.set_cookie(COOKIE, token, path=PATH, httponly=True, secure=secure, samesite="Strict")


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path=PATH)
