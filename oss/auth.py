"""HTTP Basic with API-user credentials; secrets hashed with scrypt at rest.

Verified credentials are remembered for a short while (in this process) so a
busy client does not cost one scrypt per request; the cache is keyed by a
SHA-256 of the credentials, never the secret itself.

Failed logins are throttled (`oss.login_throttle`), and an unknown login costs
the same as a wrong secret: its secret is verified against a hash no secret
matches, so the answer's timing does not tell whether a login exists.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from backhaul import metrics
from oss.errors import Forbidden, TooManyRequests, Unauthorized
from oss.login_throttle import LoginThrottle, address_key
from oss.params import OID
from oss.profiles import perms_of
from oss.storage import api_users

_N, _R, _P = 2**14, 8, 1
# Verified credentials kept at most (past it, expired ones are dropped when one is added).
MAX_CACHED = 10_000


@dataclass(frozen=True)
class Caller:
    """Who is asking: an API user, its group (the root of what it sees) and its permissions."""

    api_user_id: str
    group_id: str
    perms: frozenset[str]

    def can(self, resource: str, write: bool = False) -> bool:
        return f"{resource}:{'write' if write else 'read'}" in self.perms

    def require(self, resource: str, write: bool = False) -> None:
        if not self.can(resource, write):
            action = "write" if write else "read"
            raise Forbidden(f"You are not allowed to {action} {resource}.")


CALLER = web.RequestKey("caller", Caller)


def new_secret() -> str:
    return secrets.token_hex(16)


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                                  dklen=len(digest) // 2, maxmem=2**26)  # pragma: no mutate (room to spare)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed.hex(), digest)


@functools.lru_cache(maxsize=1)
def unknown_login_hash() -> str:
    """The hash an unknown login's secret is checked against (same cost as a real one; matches nothing)."""
    return hash_secret(secrets.token_hex(32))


class CredentialCache:
    """Recently verified credentials -> Caller, for `ttl` seconds (of `clock`, monotonic)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[Caller, float]] = {}

    @staticmethod
    def key(login: str, secret: str) -> str:
        return hashlib.sha256(f"{login}:{secret}".encode()).hexdigest()

    def get(self, key: str) -> Caller | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] < self._clock():
            del self._entries[key]
            return None
        return entry[0]

    def put(self, key: str, caller: Caller) -> None:
        now = self._clock()
        if len(self._entries) > MAX_CACHED:
            self._entries = {k: v for k, v in self._entries.items() if v[1] >= now}
        self._entries[key] = (caller, now + self.ttl)

    def forget(self, api_user_id: str) -> None:
        """Drop every entry of one API user (after renew-credential, edit or delete)."""
        self._entries = {k: v for k, v in self._entries.items() if v[0].api_user_id != api_user_id}


def credentials_of(header: str) -> tuple[str, str]:
    """(login, secret) of an Authorization header's Basic credentials; 401 saying why not."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Unauthorized()
    try:
        login, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("Authorization header is not valid Basic credentials") from None
    if not sep or not OID.fullmatch(login):
        raise Unauthorized("Invalid credentials")
    return login, secret


async def authenticate(pool: asyncpg.Pool, cache: CredentialCache, throttle: LoginThrottle,
                       request: web.Request) -> Caller:  # pragma: no mutate block (PostgreSQL)
    """The Caller behind the request's Basic credentials; 401, or 429 while its login or address is locked."""
    login, secret = credentials_of(request.headers.get("Authorization", ""))
    address = address_key(request.remote)
    wait = throttle.retry_after(login, address)
    if wait is not None:
        raise TooManyRequests(wait, "Too many failed logins for this login or from this address")
    key = cache.key(login, secret)
    caller = cache.get(key)
    if caller is not None:
        return caller
    row = await api_users.credentials(pool, login)
    stored = row["secret_hash"] if row is not None else unknown_login_hash()
    if not await asyncio.to_thread(verify_secret, secret, stored) or row is None:
        throttle.failed(login, address)
        metrics.API_LOGIN_FAILURES.inc()
        raise Unauthorized("Invalid credentials")
    throttle.succeeded(login)
    caller = Caller(login, row["group_id"], perms_of(row["profile_ids"]))
    cache.put(key, caller)
    return caller


def caller(request: web.Request) -> Caller:
    return request[CALLER]
