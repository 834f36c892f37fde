"""Why a delivery is waiting in the retry store, as the customer reads it in `cbStatus`.

A delivery that is not being sent is parked in `delivery_retries` with one of
these reasons and a sentence saying it; the API lists that sentence as the
message's last `cbStatus` entry, without `status` (no request was made), for
as long as the delivery waits.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

RETRY = "retry"                  # a try failed; the next one is on the schedule
CIRCUIT_OPEN = "circuit open"    # the endpoint keeps failing: nothing is sent to it for a while
AT_LIMIT = "rate limited"        # the endpoint's rate limit or concurrency is taken: paced, never given up
BACKLOG = "backlog"              # behind older deliveries sent in order after the endpoint recovered


def iso(epoch_s: float) -> str:
    """UTC time to the second, e.g. 2025-01-31T10:00:03Z."""
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Wait:
    reason: str
    info: str


def retry(next_try: int, tries: int, due: float) -> Wait:
    return Wait(RETRY, f"waiting: try {next_try} of {tries} at {iso(due)}")


def circuit_open(failing_since: float | None, due: float, give_up: float) -> Wait:
    since = f" (endpoint failing since {iso(failing_since)})" if failing_since else ""
    return Wait(CIRCUIT_OPEN, f"waiting: circuit open{since}; next try at {iso(due)} at the earliest; "
                              f"given up at {iso(give_up)} if not sent by then")


def at_limit(concurrency: int, rate_per_s: float, queued: int) -> Wait:
    return Wait(AT_LIMIT, f"waiting: rate limited (the endpoint takes {concurrency} requests at once and "
                          f"{rate_per_s:g} a second; {queued} queued ahead)")


def backlog() -> Wait:
    return Wait(BACKLOG, "waiting: the endpoint recovered; older deliveries go first")


def not_sent(wait_info: str) -> str:
    """The record of a delivery given up while held: why it was not sent."""
    return "not sent, retry schedule over: " + wait_info.removeprefix("waiting: ").split(";")[0]
