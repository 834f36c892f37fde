"""Failed logins throttled per login and per client address, with a growing lock.

Each scope (the login as sent, and the client's address: IPv4 as is, IPv6 by
its /64, which one client usually holds whole) counts failed logins. Past
`free_failures`, every further failure locks the key for `first_lock_s`,
doubled per failure, at most `max_lock_s`. While a key is locked every
request on it is answered 429 with Retry-After, without checking the secret
(so guessing stops costing us scrypt too). A success forgets the login's
count, not the address's: an attacker holding one good account must not be
able to wipe his address's count with it. A count is forgotten after
`forget_s` without a failure.

Unknown logins are counted exactly like known ones, so a lock says nothing
about whether a login exists. Lockouts and releases are logged (WARNING,
without any secret) and exported (`backhaul_api_login_lockouts_total`,
`backhaul_api_login_locked`). The state lives in this process's memory: one
API process enforces it exactly; N replicas behind a balancer allow up to N
times the free failures. Keys are bounded (`MAX_KEYS` per scope, the oldest
dropped) so a flood of distinct logins cannot grow memory without limit.
"""
from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from backhaul import metrics
from backhaul.settings import Settings

log = logging.getLogger(__name__)
MAX_KEYS = 100_000
SCOPES = ("login", "address")


@dataclass(frozen=True)
class LoginPolicy:
    """How many failures are free, and how long the locks after them last (0 free failures = scope off)."""

    free_failures: int = 5
    address_free_failures: int = 20
    first_lock_s: float = 1.0
    max_lock_s: float = 900.0
    forget_s: float = 3600.0

    @classmethod
    def from_settings(cls, s: Settings) -> "LoginPolicy":
        return cls(s.login_free_failures, s.login_address_free_failures, s.login_first_lock_s,
                   s.login_max_lock_s, s.login_forget_s)

    def lock_after(self, failures: int, free: int) -> float:
        """Seconds a key is locked after its `failures`-th failure (0: not locked)."""
        if free <= 0 or failures <= free:
            return 0.0
        return min(self.max_lock_s, self.first_lock_s * 2 ** min(failures - free - 1, 64))


@dataclass
class _Count:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


def address_key(remote: str | None) -> str:
    """The throttling key of a client address: IPv4 as is, IPv6 by its /64."""
    if not remote:
        return "unknown"
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    """Failure counts and locks of logins and client addresses."""

    def __init__(self, policy: LoginPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self._counts: dict[str, dict[str, _Count]] = {scope: {} for scope in SCOPES}
        self._locked: dict[str, set[str]] = {scope: set() for scope in SCOPES}

    def _free(self, scope: str) -> int:
        return self.policy.free_failures if scope == "login" else self.policy.address_free_failures

    def retry_after(self, login: str, address: str) -> int | None:
        """Whole seconds until both keys are unlocked, or None when neither is locked."""
        now = self.clock()
        self.release_expired(now)
        wait = 0.0
        for scope, key in (("login", login), ("address", address)):
            count = self._counts[scope].get(key)
            if count is not None and count.locked_until > now:
                wait = max(wait, count.locked_until - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, login: str, address: str) -> None:
        """Count one failed login on both keys; lock the ones past their free failures."""
        now = self.clock()
        for scope, key in (("login", login), ("address", address)):
            if self._free(scope) <= 0:
                continue
            counts = self._counts[scope]
            count = counts.get(key)
            if count is None or (now - count.last_failure > self.policy.forget_s and count.locked_until <= now):
                count = counts[key] = _Count()
                self._bound(scope, now)
            count.failures += 1
            count.last_failure = now
            lock = self.policy.lock_after(count.failures, self._free(scope))
            if lock > 0:
                count.locked_until = now + lock
                newly = key not in self._locked[scope]
                self._locked[scope].add(key)
                metrics.API_LOGIN_LOCKOUTS.labels(scope).inc()
                metrics.API_LOGIN_LOCKED.labels(scope).set(len(self._locked[scope]))
                log.warning("login locked" if newly else "login lock extended",
                            extra={"scope": scope, scope: key, "failures": count.failures,
                                   "lockedForS": round(lock, 3)})

    def succeeded(self, login: str) -> None:
        """A good secret: forget the login's failures (the address keeps its count)."""
        if self._counts["login"].pop(login, None) is not None and login in self._locked["login"]:
            self._locked["login"].discard(login)
            metrics.API_LOGIN_LOCKED.labels("login").set(len(self._locked["login"]))

    def release_expired(self, now: float | None = None) -> None:
        """Log and un-count every lock whose time is over (called per request and by a timer)."""
        now = self.clock() if now is None else now
        for scope in SCOPES:
            counts = self._counts[scope]
            over = [k for k in self._locked[scope] if counts.get(k) is None or counts[k].locked_until <= now]
            for key in over:
                self._locked[scope].discard(key)
                log.warning("login lock released", extra={"scope": scope, scope: key,
                                                          "failures": counts[key].failures if key in counts else 0})
            if over:
                metrics.API_LOGIN_LOCKED.labels(scope).set(len(self._locked[scope]))

    def locked(self, scope: str) -> int:
        return len(self._locked[scope])

    def _bound(self, scope: str, now: float) -> None:
        counts = self._counts[scope]
        if len(counts) <= MAX_KEYS:
            return
        forget = self.policy.forget_s
        for key in [k for k, c in counts.items() if now - c.last_failure > forget and c.locked_until <= now]:
            del counts[key]
        if len(counts) > MAX_KEYS:  # still too many: drop the oldest unlocked ones
            unlocked = sorted((c.last_failure, k) for k, c in counts.items() if c.locked_until <= now)
            for _, key in unlocked[:len(counts) - MAX_KEYS]:
                del counts[key]
