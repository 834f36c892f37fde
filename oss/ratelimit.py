"""Rate limits per endpoint and caller: a sliding window, answered with 429 and Retry-After.

Limits are named; `BACKHAUL_API_RATE_LIMITS` overrides them as
`name=count/seconds,...` (count 0 = unlimited). Defaults are Sigfox's
published ones: device messages 1 request/s per device, device list 50
requests/10 s, bulk operations 5 requests/10 min; every other endpoint is
unlimited unless `default` is set. Counters live in this process's memory,
so N API replicas allow N times the limit.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from aiohttp import web

DEFAULTS = {"device-messages": (1, 1.0), "device-list": (50, 10.0), "bulk": (5, 600.0), "default": (0, 0.0)}


@dataclass(frozen=True)
class Limit:
    count: int
    period: float


def parse_limits(text: str) -> dict[str, Limit]:
    """The defaults, overridden by `name=count/seconds` items."""
    limits = {name: Limit(*value) for name, value in DEFAULTS.items()}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, spec = item.partition("=")
        count, _, period = spec.partition("/")
        try:
            limits[name.strip()] = Limit(int(count), float(period or 1))
        except ValueError:
            raise ValueError(f"rate limit {item!r} is not name=count/seconds") from None
    return limits


def limit_name(method: str, route: str) -> str:
    """Which named limit a request falls under (`route` is the canonical path)."""
    if method == "GET" and route == "/v2/devices/{id}/messages":
        return "device-messages"
    if method == "GET" and route in ("/v2/devices", "/v2/devices/"):
        return "device-list"
    if method in ("POST", "PUT") and "/bulk" in route:
        return "bulk"
    return "default"


class RateLimiter:
    """Sliding-window counters keyed by (limit, caller[, device])."""

    def __init__(self, limits: dict[str, Limit]) -> None:
        self.limits = limits
        self._hits: dict[tuple[str, ...], deque[float]] = {}
        self._last_sweep = time.monotonic()

    def check(self, name: str, key: tuple[str, ...]) -> int | None:
        """Record a hit; None when allowed, else the seconds to wait."""
        limit = self.limits.get(name) or self.limits["default"]
        if limit.count <= 0:
            return None
        now = time.monotonic()
        self._sweep(now)
        hits = self._hits.setdefault((name, *key), deque())
        while hits and hits[0] <= now - limit.period:
            hits.popleft()
        if len(hits) >= limit.count:
            return max(1, math.ceil(hits[0] + limit.period - now))
        hits.append(now)
        return None

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < 60:
            return
        self._last_sweep = now
        longest = max((lim.period for lim in self.limits.values()), default=0.0)
        self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - longest}


def request_key(request: web.Request, name: str, caller_id: str) -> tuple[str, ...]:
    if name == "device-messages":
        return (caller_id, request.match_info.get("id", "").upper())
    return (caller_id,)
