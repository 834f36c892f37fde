"""Per-endpoint isolation: a concurrency cap, a rate limit and a circuit breaker.

One slow or dead customer endpoint must never delay another, so every endpoint
(scheme://host:port) gets its own semaphore, token bucket and breaker. Nothing
is ever dropped here: when an endpoint's circuit is open the caller is told
how long to wait (`Endpoint.retry_in()`) and keeps the delivery.

Choices:
- The breaker opens after `failure_threshold` *consecutive* failures; a
  success while closed resets the count. What counts as a failure is the
  caller's decision (typically timeouts, connection errors and 5xx).
- After `open_seconds` it is half-open and lets exactly one probe through. The
  probe's success closes it, its failure re-opens it for `open_seconds`. A
  probe that never reports (its task was cancelled) is given up after
  `open_seconds`, and another probe is let through.
- Results that arrive while open (requests started before it opened) are
  ignored: they neither close it nor extend the pause.
- open -> half_open happens when the breaker is next looked at (state,
  allow, retry_in, EndpointRegistry.states); `on_change(old, new)` fires
  then. For a gauge, read `EndpointRegistry.states()`: evictions fire nothing.
- The token bucket starts full; waiters are served first come, first served.
- The registry keeps at most `max_endpoints` endpoints and forgets the least
  recently used one beyond that (its breaker state goes with it).
"""
from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from typing import Callable
from urllib.parse import urlsplit

Clock = Callable[[], float]
OnChange = Callable[[str, str], None]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)

# While a half-open probe is in flight, other deliveries are told to come back after this.
PROBE_RETRY_S = 1.0
MAX_ENDPOINTS = 10_000
_EPSILON = 1e-9
_DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_key(url: str) -> str:
    """scheme://host:port of a URL, lower-cased, default port filled in, no credentials."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = parts.hostname  # lower-cased, without userinfo or brackets
    if not scheme or not host:
        raise ValueError(f"url {url!r}: needs a scheme and a host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"url {url!r}: invalid port") from None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
        if port is None:
            raise ValueError(f"url {url!r}: no port and no default port for scheme {scheme!r}")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


class TokenBucket:
    """At most `rate_per_s` acquisitions a second on average, `burst` at once."""

    def __init__(self, rate_per_s: float, burst: int, clock: Clock = time.monotonic) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError(f"rate_per_s={rate_per_s!r}: must be a finite number > 0")
        if burst < 1:
            raise ValueError(f"burst={burst!r}: must be >= 1")
        self.rate = float(rate_per_s)
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()  # queues waiters in arrival order

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._stamp
        if elapsed > 0:  # pragma: no mutate (nothing elapsed adds nothing)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._stamp = now

    def _take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:  # pragma: no mutate (tolerates float rounding: > is the same)
            self._tokens = max(0.0, self._tokens - 1.0)
            return True
        return False

    @property
    def tokens(self) -> float:
        """Tokens available now (fractional)."""
        self._refill()
        return self._tokens

    def wait_s(self) -> float:
        """Seconds until a token is free at the rate (0 when one is free now)."""
        return max(0.0, 1.0 - self.tokens) / self.rate

    def try_acquire(self) -> bool:
        """Take a token if one is free and nobody is queued for one."""
        if self._lock.locked():
            return False
        return self._take()

    async def acquire(self) -> None:
        """Wait (sleeping, never spinning) until a token is free, then take it."""
        async with self._lock:
            while not self._take():
                await asyncio.sleep(self.wait_s())


class CircuitBreaker:
    """closed -> open after N consecutive failures -> half_open after a pause."""

    def __init__(
        self,
        failure_threshold: int,
        open_seconds: float,
        clock: Clock = time.monotonic,
        on_change: OnChange | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold={failure_threshold!r}: must be >= 1")
        if not open_seconds >= 0:
            raise ValueError(f"open_seconds={open_seconds!r}: must be >= 0")
        self.failure_threshold = failure_threshold
        self.open_seconds = float(open_seconds)
        self.on_change = on_change
        self._clock = clock
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0  # pragma: no mutate (read only once opened)
        self._probe_since: float | None = None  # pragma: no mutate (read only once half-open)

    def _set(self, new: str) -> None:
        old, self._state = self._state, new
        if old != new and self.on_change is not None:
            self.on_change(old, new)

    def _refresh(self) -> str:
        if self._state == OPEN and self._clock() >= self._opened_at + self.open_seconds:
            self._probe_since = None
            self._set(HALF_OPEN)
        return self._state

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probe_since = None  # pragma: no mutate (equivalent: reset again when it turns half-open)
        self._set(OPEN)

    @property
    def state(self) -> str:
        """"closed", "open" or "half_open"."""
        return self._refresh()

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    def allow(self) -> bool:
        """May a request go now? Half-open lets one probe through at a time."""
        state = self._refresh()
        if state == CLOSED:
            return True
        if state == OPEN:
            return False
        now = self._clock()
        if self._probe_since is None or now - self._probe_since >= self.open_seconds:
            self._probe_since = now
            return True
        return False

    def record_success(self) -> None:
        state = self._refresh()
        if state == CLOSED:
            self._failures = 0
        elif state == HALF_OPEN:
            self._failures = 0
            self._probe_since = None  # pragma: no mutate (equivalent: only read while half-open)
            self._set(CLOSED)

    def record_failure(self) -> None:
        state = self._refresh()
        if state == CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._failures = 0
                self._open()
        elif state == HALF_OPEN:
            self._open()

    def retry_in(self) -> float:
        """Seconds until allow() may say yes again (0 when it would now)."""
        state = self._refresh()
        now = self._clock()
        if state == OPEN:
            return max(0.0, self._opened_at + self.open_seconds - now)
        if state == HALF_OPEN and self._probe_since is not None:
            probe_expires = self._probe_since + self.open_seconds - now
            return max(0.0, min(PROBE_RETRY_S, probe_expires))
        return 0.0


class Endpoint:
    """The bulkhead of one endpoint: concurrency cap, token bucket, breaker."""

    def __init__(self, key: str, concurrency: int, bucket: TokenBucket, breaker: CircuitBreaker) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency={concurrency!r}: must be >= 1")
        self.key = key
        self.concurrency = concurrency
        self.semaphore = asyncio.Semaphore(concurrency)
        self.bucket = bucket
        self.breaker = breaker

    def retry_in(self) -> float:
        """Seconds to wait before trying this endpoint again (0 = go now)."""
        return self.breaker.retry_in()

    def __repr__(self) -> str:
        return f"<Endpoint {self.key} {self.breaker.state} concurrency={self.concurrency} rate={self.bucket.rate}>"


class EndpointRegistry:
    """Endpoints by key, created on first use, least recently used forgotten first.

    A per-endpoint `rate` override keeps the default's burst in seconds
    (burst = rate * default_burst / default_rate, at least 1). Asking for other
    limits than an endpoint has replaces its semaphore and bucket and keeps its
    breaker; requests holding the old semaphore finish under the old cap.
    """

    def __init__(
        self,
        default_concurrency: int,
        default_rate: float,
        default_burst: int,
        failure_threshold: int,
        open_seconds: float,
        *,
        max_endpoints: int = MAX_ENDPOINTS,
        clock: Clock = time.monotonic,
        on_change: OnChange | None = None,
    ) -> None:
        if max_endpoints < 1:
            raise ValueError(f"max_endpoints={max_endpoints!r}: must be >= 1")
        self.default_concurrency = default_concurrency
        self.default_rate = default_rate
        self.default_burst = default_burst
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.max_endpoints = max_endpoints
        self.on_change = on_change
        self._clock = clock
        self._endpoints: OrderedDict[str, Endpoint] = OrderedDict()

    def _burst_for(self, rate: float) -> int:
        if rate == self.default_rate:
            return self.default_burst
        return max(1, round(rate * self.default_burst / self.default_rate))

    def get(self, key: str, *, concurrency: int | None = None, rate: float | None = None) -> Endpoint:
        """The endpoint for `key` (see endpoint_key), with optional own limits."""
        concurrency = self.default_concurrency if concurrency is None else concurrency
        rate = self.default_rate if rate is None else rate
        endpoint = self._endpoints.get(key)
        if endpoint is not None:
            self._endpoints.move_to_end(key)
            if endpoint.concurrency == concurrency and endpoint.bucket.rate == rate:
                return endpoint
            breaker = endpoint.breaker
        else:
            breaker = CircuitBreaker(self.failure_threshold, self.open_seconds, self._clock, self.on_change)
        bucket = TokenBucket(rate, self._burst_for(rate), self._clock)
        endpoint = Endpoint(key, concurrency, bucket, breaker)
        self._endpoints[key] = endpoint
        while len(self._endpoints) > self.max_endpoints:
            self._endpoints.popitem(last=False)  # pragma: no mutate (last=None is the same)
        return endpoint

    def peek(self, key: str) -> Endpoint | None:
        """The endpoint for `key` if there is one, unchanged (get() may replace its limits)."""
        return self._endpoints.get(key)

    def states(self) -> dict[str, int]:
        """How many endpoints' circuits are in each state (all three keys present)."""
        counts = dict.fromkeys(STATES, 0)
        for endpoint in self._endpoints.values():
            counts[endpoint.breaker.state] += 1
        return counts

    def __len__(self) -> int:
        return len(self._endpoints)

    def __contains__(self, key: object) -> bool:
        return key in self._endpoints
