"""The retry schedule, Retry-After and error classes."""
from __future__ import annotations

import asyncio
import random
import socket
import ssl
from datetime import datetime, timezone
from email.utils import format_datetime
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.http_exceptions import BadHttpMessage
from hypothesis import given
from hypothesis import strategies as st

from backhaul.destinations import DestinationRefused
from callback_language.status import NON_HTTP_STATUS
from workers.retry import (
    ERROR_CLASSES,
    MAX_RETRY_AFTER_S,
    RetryPolicy,
    classify,
    give_up_at,
    is_success,
    next_delay,
    next_try_at,
    parse_retry_after,
)

NO_JITTER = RetryPolicy(jitter=0.0)


def test_default_policy_is_sigfox():
    policy = RetryPolicy()
    assert policy.schedule == (60, 120, 240)
    assert policy.timeout_s == 10.0
    assert policy.max_attempts == 4
    assert NON_HTTP_STATUS == 600


def test_schedule_then_exhausted():
    assert [next_delay(NO_JITTER, n, None) for n in (1, 2, 3, 4, 5)] == [60, 120, 240, None, None]


def test_attempt_must_count_the_first_try():
    with pytest.raises(ValueError, match="attempt"):
        next_delay(NO_JITTER, 0, None)


def test_jitter_stays_within_fraction_and_varies():
    rng = random.Random(7)
    delays = [next_delay(RetryPolicy(), 2, None, rng) for _ in range(500)]
    assert all(108.0 <= d <= 132.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100


def test_jitter_is_reproducible_with_a_seeded_rng():
    assert next_delay(RetryPolicy(), 1, None, random.Random(1)) == next_delay(RetryPolicy(), 1, None, random.Random(1))


def test_longer_retry_after_wins_shorter_is_ignored():
    assert next_delay(NO_JITTER, 1, 300.0) == 300.0
    assert next_delay(NO_JITTER, 1, 5.0) == 60.0


def test_retry_after_is_capped_but_never_shortens_the_schedule():
    assert next_delay(NO_JITTER, 1, 10 * 24 * 3600.0) == MAX_RETRY_AFTER_S
    assert next_delay(NO_JITTER, 1, float("inf")) == MAX_RETRY_AFTER_S
    long_schedule = RetryPolicy(schedule=(7200.0,), jitter=0.0)
    assert next_delay(long_schedule, 1, 10 * 24 * 3600.0) == 7200.0


def test_retry_after_does_not_add_attempts():
    assert next_delay(NO_JITTER, 3, 30.0) == 240.0
    assert next_delay(NO_JITTER, 4, 30.0) is None


def test_policy_refuses_nonsense():
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)
    with pytest.raises(ValueError, match="schedule"):
        RetryPolicy(schedule=(60.0, -1.0))
    with pytest.raises(ValueError, match="timeout_s"):
        RetryPolicy(timeout_s=0)


def test_parse_retry_after_delta_seconds():
    assert parse_retry_after("120", now=0) == 120.0
    assert parse_retry_after("  0 ", now=0) == 0.0


def test_parse_retry_after_http_date():
    now = datetime(2015, 10, 21, 7, 0, 0, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 28 * 60
    when = format_datetime(datetime(2015, 10, 21, 7, 1, 0, tzinfo=timezone.utc), usegmt=True)
    assert parse_retry_after(when, now) == 60.0


def test_parse_retry_after_past_date_is_zero():
    now = datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3", "\u00b2", "Wed, 99 Foo 2015"])
def test_parse_retry_after_unreadable_is_none(value):
    assert parse_retry_after(value, now=0) is None


@pytest.mark.parametrize("status, ok", [(200, True), (204, True), (299, True), (199, False), (300, False),
                                        (404, False), (500, False), (NON_HTTP_STATUS, False)])
def test_is_success_only_2xx(status, ok):
    assert is_success(status) is ok


@pytest.mark.parametrize("status, expected", [
    (200, "ok"), (201, "ok"), (400, "http_4xx"), (404, "http_4xx"), (429, "http_429"),
    (500, "http_5xx"), (503, "http_5xx"), (302, "invalid_answer"), (101, "invalid_answer"),
    (None, "other"), (NON_HTTP_STATUS, "other"),
])
def test_classify_status(status, expected):
    assert classify(status, None) == expected


def _key() -> ConnectionKey:
    return ConnectionKey("example.com", 443, True, True, None, None, None)


def _request_info():
    return SimpleNamespace(real_url="https://example.com/", url="https://example.com/", method="POST", headers={})


def _malformed_answer() -> aiohttp.ClientResponseError:
    try:
        try:
            raise BadHttpMessage("bad status line")
        except BadHttpMessage as cause:
            raise aiohttp.ClientResponseError(_request_info(), (), status=400, message="bad") from cause
    except aiohttp.ClientResponseError as exc:
        return exc


@pytest.mark.parametrize("exc, expected", [
    (asyncio.TimeoutError(), "timeout"),
    (aiohttp.ServerTimeoutError("read timeout"), "timeout"),
    (aiohttp.ConnectionTimeoutError("connect timeout"), "timeout"),
    (aiohttp.ClientConnectorError(_key(), ConnectionRefusedError(111, "refused")), "connect"),
    (aiohttp.ClientConnectorDNSError(_key(), socket.gaierror(-2, "Name or service not known")), "dns"),
    (aiohttp.ClientConnectorError(_key(), socket.gaierror(-2, "Name or service not known")), "dns"),
    (aiohttp.ClientConnectorCertificateError(_key(), ssl.SSLCertVerificationError("bad cert")), "tls"),
    (aiohttp.ClientConnectorSSLError(_key(), ssl.SSLError("handshake")), "tls"),
    (ssl.SSLError("raw"), "tls"),
    (aiohttp.ServerDisconnectedError(), "connect"),
    (ConnectionResetError(), "connect"),
    (aiohttp.ClientPayloadError("truncated body"), "invalid_answer"),
    (_malformed_answer(), "invalid_answer"),
    (aiohttp.ClientResponseError(_request_info(), (), status=503), "http_5xx"),
    (aiohttp.ClientResponseError(_request_info(), (), status=429), "http_429"),
    (aiohttp.InvalidURL("nope"), "other"),
    (RuntimeError("boom"), "other"),
    (aiohttp.TooManyRedirects(_request_info(), ()), "invalid_answer"),
    (BadHttpMessage("garbage"), "invalid_answer"),
    (DestinationRefused("127.0.0.1 is loopback"), "destination"),
    (aiohttp.ClientConnectorError(_key(), DestinationRefused("10.0.0.1 is private")), "destination"),
])
def test_classify_exception(exc, expected):
    assert classify(None, exc) == expected
    assert expected in ERROR_CLASSES


def test_exception_wins_over_status():
    assert classify(200, asyncio.TimeoutError()) == "timeout"


async def test_classify_real_refused_connection_and_timeout():
    # A port nobody listens on, and a server that accepts but never answers.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]

    async def silent(reader, writer):
        while await reader.read(1024):  # read the request, never answer
            pass
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    silent_port = server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as session:
            with pytest.raises(Exception) as refused:
                await session.post(f"http://127.0.0.1:{free_port}/", data=b"x")
            assert classify(None, refused.value) == "connect"
            with pytest.raises(Exception) as timed_out:
                await session.post(f"http://127.0.0.1:{silent_port}/", data=b"x")
            assert classify(None, timed_out.value) == "timeout"
    finally:
        server.close()


# The schedule as a deadline ------------------------------------------------

def test_the_sigfox_preset_gives_up_7_min_40_s_after_the_start():
    policy = RetryPolicy()
    assert policy.give_up_after_s == 60 + 120 + 240 + 4 * 10
    routed = {"createdAt": 1_000_000}
    assert give_up_at(policy, routed) == 1_000 + 460
    replayed = {"createdAt": 1_000_000, "scheduleFrom": 5_000_000}
    assert give_up_at(policy, replayed) == 5_000 + 460, "a replay has a schedule of its own"


def test_next_try_follows_the_schedule_before_the_deadline():
    deadline = 1_000.0 + NO_JITTER.give_up_after_s
    assert next_try_at(NO_JITTER, 1, None, 1_000.0, deadline) == 1_060.0
    assert next_try_at(NO_JITTER, 3, None, 1_180.0, deadline) == 1_420.0
    assert next_try_at(NO_JITTER, 4, None, 1_420.0, deadline) is None, "tries used up"


def test_a_try_late_on_its_schedule_is_made_at_the_deadline_at_the_latest():
    deadline = 1_460.0
    # held by an open circuit for 7 minutes, the first try failed at 1_420: +1 min would pass the deadline
    assert next_try_at(NO_JITTER, 1, None, 1_420.0, deadline) == deadline
    assert next_try_at(NO_JITTER, 1, None, 1_370.0, deadline) == 1_430.0
    assert next_try_at(NO_JITTER, 1, 3_000.0, 1_000.0, deadline) == deadline, "Retry-After up to the deadline"


def test_nothing_is_tried_once_the_deadline_has_passed():
    assert next_try_at(NO_JITTER, 1, None, 1_460.0, 1_460.0) is None
    assert next_try_at(NO_JITTER, 2, None, 1_500.0, 1_460.0) is None


# Retry-After against the schedule's deadline, at the boundaries (issue 18) ------------------------

START = datetime(2025, 1, 31, 10, 0, 0, tzinfo=timezone.utc).timestamp()
DEADLINE = START + NO_JITTER.give_up_after_s  # 10:07:40


def test_retry_after_as_an_http_date_is_counted_from_now_and_kept_to_the_deadline():
    failed_at = START + 10
    wait = parse_retry_after("Fri, 31 Jan 2025 10:05:00 GMT", failed_at)
    assert wait == 290.0
    assert next_try_at(NO_JITTER, 1, wait, failed_at, DEADLINE) == START + 300  # longer than +1 min: it wins
    later = parse_retry_after("Fri, 31 Jan 2025 10:09:00 GMT", failed_at)
    assert next_try_at(NO_JITTER, 1, later, failed_at, DEADLINE) == DEADLINE  # past the deadline: at it


def test_retry_after_in_seconds_one_second_either_side_of_the_deadline():
    failed_at = START + 100
    room = DEADLINE - failed_at  # 360 s left
    assert next_try_at(NO_JITTER, 1, room - 1, failed_at, DEADLINE) == DEADLINE - 1
    assert next_try_at(NO_JITTER, 1, room, failed_at, DEADLINE) == DEADLINE
    assert next_try_at(NO_JITTER, 1, room + 1, failed_at, DEADLINE) == DEADLINE


def test_a_failure_a_millisecond_before_the_deadline_is_tried_at_it_and_one_at_it_is_given_up():
    assert next_try_at(NO_JITTER, 1, None, DEADLINE - 0.001, DEADLINE) == DEADLINE
    assert next_try_at(NO_JITTER, 1, 30.0, DEADLINE - 0.001, DEADLINE) == DEADLINE
    assert next_try_at(NO_JITTER, 1, None, DEADLINE, DEADLINE) is None
    assert next_try_at(NO_JITTER, 1, None, DEADLINE + 0.001, DEADLINE) is None


def test_an_http_date_without_zone_or_with_minus_zero_is_utc():
    now = START
    assert parse_retry_after("Fri, 31 Jan 2025 10:01:00 -0000", now) == 60.0
    assert parse_retry_after("Fri, 31 Jan 2025 11:01:00 +0100", now) == 60.0
    assert parse_retry_after("Fri, 31 Jan 2025 10:00:00 GMT", now) == 0.0  # exactly now
    assert parse_retry_after("Fri, 31 Jan 2025 09:59:59 GMT", now) == 0.0  # a second ago


def test_retry_after_is_not_jittered_and_a_shorter_one_keeps_the_jittered_delay():
    policy = RetryPolicy(jitter=0.1)
    assert next_delay(policy, 1, 500.0, random.Random(3)) == 500.0
    jittered = next_delay(policy, 1, None, random.Random(3))
    assert next_delay(policy, 1, 1.0, random.Random(3)) == jittered != 60.0
    assert next_delay(NO_JITTER, 1, float("nan"), None) == 60.0  # an unreadable value changes nothing


def test_the_retry_after_cap_is_one_hour_to_the_second():
    assert MAX_RETRY_AFTER_S == 3600.0
    assert next_delay(NO_JITTER, 1, 3599.0) == 3599.0
    assert next_delay(NO_JITTER, 1, 3601.0) == 3600.0


@given(attempt=st.integers(1, 5), retry_after=st.one_of(st.none(), st.floats(0, 10 * 3600)),
       elapsed=st.floats(0, 600), seed=st.integers(0, 2**32))
def test_a_retry_is_never_before_now_nor_after_the_deadline(attempt, retry_after, elapsed, seed):
    policy = RetryPolicy()
    now = START + elapsed
    due = next_try_at(policy, attempt, retry_after, now, DEADLINE, random.Random(seed))
    if attempt > len(policy.schedule) or now >= DEADLINE:
        assert due is None
        return
    assert due is not None and now < due <= DEADLINE
    scheduled = policy.schedule[attempt - 1]
    assert due >= min(now + scheduled * (1 - policy.jitter), DEADLINE) - 1e-9
    if retry_after is not None:
        assert due >= min(now + min(retry_after, MAX_RETRY_AFTER_S), DEADLINE) - 1e-9


def test_policy_limits_at_their_boundaries():
    assert RetryPolicy(schedule=(0.0, 0.5), jitter=0.0, timeout_s=0.5).schedule == (0.0, 0.5)  # 0 s: at once
    assert next_delay(RetryPolicy(schedule=(0.0,), jitter=0.0), 1, None) == 0.0
    with pytest.raises(ValueError, match=r"jitter=1\.0: must be in \[0, 1\)"):
        RetryPolicy(jitter=1.0)
    with pytest.raises(ValueError, match=r"schedule=\(60\.0, inf\): delays must be finite and >= 0"):
        RetryPolicy(schedule=(60.0, float("inf")))
    with pytest.raises(ValueError, match="timeout_s=-1: must be > 0"):
        RetryPolicy(timeout_s=-1)


def test_jitter_is_drawn_from_the_rng_given_and_centred_on_the_schedule():
    policy = RetryPolicy(jitter=0.1)
    draw = random.Random(5).uniform(-0.1, 0.1)
    assert next_delay(policy, 2, None, random.Random(5)) == pytest.approx(120.0 * (1.0 + draw))
    assert next_try_at(policy, 2, None, START, DEADLINE, random.Random(5)) == pytest.approx(
        START + 120.0 * (1.0 + draw))


def test_a_minus_zero_date_is_utc_whatever_the_machines_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert parse_retry_after("Fri, 31 Jan 2025 10:01:00 -0000", START) == 60.0
    finally:
        monkeypatch.undo()
        time.tzset()
