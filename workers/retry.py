"""When to try a callback again, and how to name what went wrong.

The default policy is Sigfox's: a 10 s answer timeout, then retries at +1, +2
and +4 minutes, after which the delivery is dead. Only a 2xx status is success.

Choices:
- Jitter spreads each scheduled delay uniformly over +-`jitter` of itself, so
  many deliveries failing together do not all come back in the same second.
- A `Retry-After` longer than the (jittered) scheduled delay wins, capped at
  `MAX_RETRY_AFTER_S` (1 hour) so that a receiver cannot park a delivery for
  days. It never adds attempts: exhaustion is decided by the schedule alone.
  Jitter is not applied to a Retry-After: the receiver named its time.
- The schedule is also a deadline (`give_up_at`): a delivery is tried no
  later than its start (`scheduleFrom` of a replay, else `createdAt`, when it
  was routed) plus the schedule's delays plus the answer time of every try:
  420 + 4 x 10 s = 7 min 40 s with the preset. A retry that would fall after
  it is made at it; a try that fails after it, or a delivery held by an open
  circuit after it, is given up then. Waiting for the endpoint's rate limit or
  queue never gives a delivery up: the endpoint is well, we are pacing.
  A Retry-After is honoured up to that time too.
- Failures that carry no HTTP status (timeout, connection, TLS, DNS, a
  destination the rule of `backhaul.destinations` refuses) are recorded with
  status `NON_HTTP_STATUS` (600, `callback_language.status`), as Sigfox does.
"""
from __future__ import annotations

import asyncio
import math
import random
import socket
import ssl
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from backhaul.destinations import refusal_of
from callback_language.status import NON_HTTP_STATUS
from schemas.deliveries import Delivery, schedule_start_ms

MAX_RETRY_AFTER_S = 3600.0

# Every value classify() can return; bounded, so fit for metric labels.
ERROR_CLASSES = (
    "ok", "http_4xx", "http_5xx", "http_429", "timeout", "connect", "tls", "dns", "invalid_answer", "destination",
    "other",
)
# A delivery given up without a request: held by an open circuit until its schedule ran out.
NOT_SENT = "not_sent"


@dataclass(frozen=True)
class RetryPolicy:
    """Delays (seconds) between attempts, their jitter, and the answer timeout."""

    schedule: tuple[float, ...] = (60.0, 120.0, 240.0)
    jitter: float = 0.1
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if any(not math.isfinite(d) or d < 0 for d in self.schedule):
            raise ValueError(f"schedule={self.schedule!r}: delays must be finite and >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter={self.jitter!r}: must be in [0, 1)")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s={self.timeout_s!r}: must be > 0")

    @property
    def max_attempts(self) -> int:
        """The first try plus one retry per scheduled delay."""
        return len(self.schedule) + 1

    @property
    def give_up_after_s(self) -> float:
        """How long after its start a delivery may still be tried: every delay plus every try's answer time."""
        return sum(self.schedule) + self.max_attempts * self.timeout_s


def give_up_at(policy: RetryPolicy, delivery: Delivery) -> float:
    """Epoch seconds after which the delivery is no longer tried (see the module docstring)."""
    return schedule_start_ms(delivery) / 1000 + policy.give_up_after_s


def next_try_at(policy: RetryPolicy, attempt: int, retry_after: float | None, now: float, deadline: float,
                rng: random.Random | None = None) -> float | None:
    """Epoch seconds of the next try after failed try number `attempt`, or None: give it up.

    The schedule's delay (see next_delay), but never past `deadline`; nothing once it has passed.
    """
    delay = next_delay(policy, attempt, retry_after, rng)
    if delay is None or now >= deadline:
        return None
    return min(now + delay, deadline)


def next_delay(
    policy: RetryPolicy, attempt: int, retry_after: float | None, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next attempt, or None when the schedule is exhausted.

    `attempt` counts the attempts already made (1 after the first try).
    """
    if attempt < 1:
        raise ValueError(f"attempt={attempt!r}: must be >= 1 (attempts already made)")
    if attempt > len(policy.schedule):
        return None
    delay = policy.schedule[attempt - 1]
    if policy.jitter:
        delay *= 1.0 + (rng or random).uniform(-policy.jitter, policy.jitter)
    if retry_after is not None and not math.isnan(retry_after):
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date).

    `now` is epoch seconds. A date in the past gives 0; an unreadable value None.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def is_success(status: int) -> bool:
    """Only 2xx counts as delivered."""
    return 200 <= status < 300


def classify(status: int | None, exc: BaseException | None) -> str:
    """The error class of one attempt; an exception wins over a status.

    Statuses outside 2xx/4xx/5xx (1xx, unfollowed 3xx) are "invalid_answer":
    the receiver answered, but not in a way the delivery contract knows.
    """
    if exc is not None:
        return _classify_exception(exc)
    if status is None or status == NON_HTTP_STATUS:
        return "other"
    if is_success(status):
        return "ok"
    if status == 429:
        return "http_429"
    if 400 <= status < 500:
        return "http_4xx"
    if 500 <= status < 600:  # pragma: no mutate (600 is NON_HTTP_STATUS, classified above)
        return "http_5xx"
    return "invalid_answer"


def _classify_exception(exc: BaseException) -> str:
    if refusal_of(exc) is not None:
        return "destination"  # the destination rule refused it before any connection
    # Order matters: aiohttp's TLS and DNS errors are connector errors, and
    # its timeouts are connection errors too.
    if isinstance(exc, (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch, ssl.SSLError)):
        return "tls"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, (aiohttp.ClientConnectorDNSError, socket.gaierror)):
        return "dns"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, socket.gaierror):
            return "dns"
        return "connect"
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ContentTypeError)):
        return "invalid_answer"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "invalid_answer"
    if isinstance(exc, aiohttp.ClientResponseError):
        # aiohttp reports a malformed status line or header as a ClientResponseError
        # with status 400 caused by an HttpProcessingError: the receiver's fault.
        if isinstance(exc.__cause__, HttpProcessingError):
            return "invalid_answer"
        return classify(exc.status, None)
    if isinstance(exc, HttpProcessingError):
        return "invalid_answer"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionError)):
        return "connect"
    return "other"
