"""Per-endpoint bulkheads: token bucket, circuit breaker, registry."""
from __future__ import annotations

import asyncio
import time

import pytest

from tests.clock import FakeClock
from workers.bulkhead import (
    PROBE_RETRY_S,
    CircuitBreaker,
    Endpoint,
    EndpointRegistry,
    TokenBucket,
    endpoint_key,
)

# endpoint_key

@pytest.mark.parametrize("url, key", [
    ("https://Example.COM/path?q=1", "https://example.com:443"),
    ("http://example.com/x", "http://example.com:80"),
    ("HTTP://example.com:8080", "http://example.com:8080"),
    ("https://user:secret@example.com:8443/cb", "https://example.com:8443"),
    ("http://[::1]:9000/", "http://[::1]:9000"),
    ("http://127.0.0.1/", "http://127.0.0.1:80"),
])
def test_endpoint_key(url, key):
    assert endpoint_key(url) == key


@pytest.mark.parametrize("url", ["example.com/path", "", "http://", "ftp://example.com/", "http://example.com:99999/"])
def test_endpoint_key_refuses(url):
    with pytest.raises(ValueError, match="url"):
        endpoint_key(url)


# TokenBucket

def test_bucket_burst_then_rate_with_fake_clock():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=10, burst=5, clock=clock)
    assert [bucket.try_acquire() for _ in range(6)] == [True] * 5 + [False]
    clock.advance(0.05)  # half a token
    assert not bucket.try_acquire()
    clock.advance(0.05)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    clock.advance(100)  # refill stops at burst
    assert bucket.tokens == 5
    granted = 0
    for _ in range(100):  # 10 s at 10/s after the burst is spent
        clock.advance(0.1)
        granted += bucket.try_acquire()
    assert granted == 100


def test_bucket_refuses_nonsense():
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBucket(0, 1)
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBucket(float("inf"), 1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1, 0)


async def test_bucket_acquire_waits_for_the_rate_real_clock():
    bucket = TokenBucket(rate_per_s=50, burst=2)
    start = time.monotonic()
    for _ in range(12):  # 2 from the burst, 10 at 50/s = 0.2 s
        await bucket.acquire()
    elapsed = time.monotonic() - start
    assert 0.17 <= elapsed < 0.6


async def test_bucket_acquire_sleeps_instead_of_spinning(monkeypatch):
    bucket = TokenBucket(rate_per_s=5, burst=1)
    await bucket.acquire()
    sleeps = []
    real_sleep = asyncio.sleep

    acquiring = asyncio.current_task()

    async def counting_sleep(delay, *args):
        # Only this task's sleeps: other tasks on the loop (a client's
        # background timer, say) may sleep while the patch is in place.
        if asyncio.current_task() is acquiring:
            sleeps.append(delay)
        return await real_sleep(delay, *args)

    monkeypatch.setattr(asyncio, "sleep", counting_sleep)
    await bucket.acquire()
    monkeypatch.undo()
    assert 1 <= len(sleeps) <= 3
    assert 0.1 < sum(sleeps) <= 0.25


async def test_bucket_waiters_served_in_order_and_try_acquire_does_not_jump_the_queue():
    bucket = TokenBucket(rate_per_s=20, burst=1)
    assert bucket.try_acquire()
    order = []

    async def waiter(n):
        await bucket.acquire()
        order.append(n)

    tasks = [asyncio.create_task(waiter(n)) for n in range(4)]
    await asyncio.sleep(0.01)
    assert not bucket.try_acquire()  # others are queued
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]


def test_bucket_says_how_long_until_the_next_token_to_the_millisecond():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=10, burst=1, clock=clock)
    assert bucket.wait_s() == 0.0
    assert bucket.try_acquire()
    assert bucket.wait_s() == pytest.approx(0.1)
    clock.advance(0.099)
    assert bucket.wait_s() == pytest.approx(0.001) and not bucket.try_acquire()
    clock.advance(0.001)
    assert bucket.wait_s() == pytest.approx(0.0, abs=1e-9) and bucket.try_acquire()
    clock.advance(10)
    assert bucket.tokens == 1.0  # never more than the burst, however long it was idle


def test_bucket_under_steady_demand_gives_the_burst_then_exactly_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=8, burst=4, clock=clock)
    taken = 0
    for _ in range(10 * 64):  # someone asks every 1/64 s for 10 s
        taken += bucket.try_acquire()
        clock.advance(1 / 64)
    assert taken == 4 + 8 * 10 - 1  # the burst, then one every 1/8 s (the 80th is due at the very end)


async def test_bucket_acquire_waits_exactly_until_the_next_token_on_the_injected_clock(monkeypatch):
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=4, burst=2, clock=clock)
    acquiring = asyncio.current_task()
    real_sleep = asyncio.sleep
    slept = []

    async def clock_sleep(delay, *args):
        if asyncio.current_task() is not acquiring:
            return await real_sleep(delay, *args)
        slept.append(delay)
        clock.advance(delay)  # time passes only on the fake clock: no real waiting

    monkeypatch.setattr(asyncio, "sleep", clock_sleep)
    start = clock.now
    for _ in range(6):
        await bucket.acquire()
    monkeypatch.undo()
    assert slept == pytest.approx([0.25] * 4)  # the burst of 2, then one token every 1/4 s
    assert clock.now - start == pytest.approx(1.0)


# CircuitBreaker

def test_breaker_closed_to_open_to_half_open_to_closed():
    clock = FakeClock()
    changes = []
    breaker = CircuitBreaker(failure_threshold=3, open_seconds=30, clock=clock,
                             on_change=lambda old, new: changes.append((old, new)))
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.retry_in() == 30
    clock.advance(29)
    assert breaker.retry_in() == pytest.approx(1)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.state == "half_open"
    assert breaker.retry_in() == 0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # exactly one at a time
    assert breaker.retry_in() == PROBE_RETRY_S
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_breaker_failed_probe_reopens_for_a_full_pause():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=10, clock=clock)
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow()
    clock.advance(3)
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.retry_in() == 10
    clock.advance(10)
    assert breaker.state == "half_open"


def test_breaker_counts_consecutive_failures_only():
    breaker = CircuitBreaker(failure_threshold=3, open_seconds=10, clock=FakeClock())
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.failures == 0


def test_breaker_ignores_late_results_while_open():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, open_seconds=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(5)
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.retry_in() == 5


def test_breaker_lost_probe_is_replaced_after_a_pause():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=10, clock=clock)
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow()  # this probe's task is cancelled and never reports
    clock.advance(9.5)
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(0.5)
    clock.advance(0.5)
    assert breaker.allow()


# Endpoint and registry

async def test_endpoint_semaphore_caps_concurrency():
    endpoint = Endpoint("http://x:80", 2, TokenBucket(1000, 1000), CircuitBreaker(5, 30))
    running = peak = 0

    async def call():
        nonlocal running, peak
        async with endpoint.semaphore:
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(call() for _ in range(10)))
    assert peak == 2


def test_endpoint_retry_in_follows_the_breaker():
    clock = FakeClock()
    registry = EndpointRegistry(4, 10, 20, failure_threshold=1, open_seconds=30, clock=clock)
    endpoint = registry.get("https://a:443")
    assert endpoint.retry_in() == 0
    endpoint.breaker.record_failure()
    assert endpoint.retry_in() == 30


def test_registry_reuses_endpoints_and_isolates_them():
    clock = FakeClock()
    registry = EndpointRegistry(4, 10.0, 20, failure_threshold=1, open_seconds=30, clock=clock)
    a = registry.get("https://a:443")
    b = registry.get("https://b:443")
    assert registry.get("https://a:443") is a
    a.breaker.record_failure()
    assert not a.breaker.allow()
    assert b.breaker.allow()
    for _ in range(20):
        assert a.bucket.try_acquire()
    assert not a.bucket.try_acquire()
    assert b.bucket.try_acquire()
    assert registry.states() == {"closed": 1, "open": 1, "half_open": 0}
    clock.advance(30)
    assert registry.states() == {"closed": 1, "open": 0, "half_open": 1}


def test_registry_per_endpoint_limits_keep_the_breaker():
    registry = EndpointRegistry(16, 200.0, 400, failure_threshold=1, open_seconds=30, clock=FakeClock())
    first = registry.get("https://a:443")
    assert first.concurrency == 16 and first.bucket.rate == 200 and first.bucket.burst == 400
    first.breaker.record_failure()
    limited = registry.get("https://a:443", concurrency=2, rate=5.0)
    assert limited.concurrency == 2 and limited.bucket.rate == 5.0
    assert limited.bucket.burst == 10  # two seconds of burst, like the default
    assert limited.breaker is first.breaker
    assert registry.get("https://a:443", concurrency=2, rate=5.0) is limited
    assert registry.get("https://b:443", rate=0.1).bucket.burst == 1


def test_registry_is_lru_bounded():
    registry = EndpointRegistry(1, 1.0, 1, 1, 1.0, max_endpoints=3)
    for name in "abc":
        registry.get(f"http://{name}:80")
    registry.get("http://a:80")  # a is now the most recent
    registry.get("http://d:80")
    assert len(registry) == 3
    assert "http://b:80" not in registry
    assert all(f"http://{n}:80" in registry for n in "acd")


def test_registry_reports_breaker_changes():
    changes = []
    registry = EndpointRegistry(1, 1.0, 1, 1, 10.0, clock=FakeClock(),
                                on_change=lambda old, new: changes.append((old, new)))
    registry.get("http://a:80").breaker.record_failure()
    assert changes == [("closed", "open")]


def test_after_recovery_the_breaker_counts_failures_from_zero_again():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, open_seconds=10, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state == "open" and breaker.failures == 0
    clock.advance(10)
    assert breaker.allow()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.failures == 2  # a third is needed to open it again
    breaker.record_failure()
    assert breaker.state == "open"


def test_an_open_breaker_says_zero_seconds_exactly_at_the_end_of_its_pause():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=10, clock=clock)
    breaker.record_failure()
    clock.advance(9.999)
    assert breaker.state == "open" and breaker.retry_in() == pytest.approx(0.001)
    clock.advance(0.001)
    assert breaker.retry_in() == 0.0 and breaker.state == "half_open"


def test_registry_with_room_for_one_endpoint_and_nonsense_refused():
    registry = EndpointRegistry(1, 1.0, 1, 1, 1.0, max_endpoints=1)
    a = registry.get("http://a:80")
    assert a.key == "http://a:80" and registry.peek("http://a:80") is a
    registry.get("http://b:80")
    assert len(registry) == 1 and "http://a:80" not in registry and registry.peek("http://a:80") is None
    with pytest.raises(ValueError, match="max_endpoints=0: must be >= 1"):
        EndpointRegistry(1, 1.0, 1, 1, 1.0, max_endpoints=0)


def test_registry_replaces_the_limits_when_only_the_rate_changes_and_counts_states():
    clock = FakeClock()
    registry = EndpointRegistry(4, 10.0, 20, failure_threshold=1, open_seconds=30, clock=clock)
    first = registry.get("https://a:443")
    faster = registry.get("https://a:443", concurrency=4, rate=20.0)
    assert faster is not first and faster.bucket.rate == 20.0 and faster.breaker is first.breaker
    for name in "bcd":
        registry.get(f"https://{name}:443").breaker.record_failure()
    assert registry.states() == {"closed": 1, "open": 3, "half_open": 0}
    for _ in range(faster.bucket.burst):
        assert faster.bucket.try_acquire()
    clock.advance(0.05)  # the registry's clock paces the new bucket: one token at 20/s
    assert faster.bucket.try_acquire() and not faster.bucket.try_acquire()


def test_limits_are_refused_by_name_and_a_zero_pause_is_allowed():
    with pytest.raises(ValueError) as e:
        CircuitBreaker(failure_threshold=0, open_seconds=1)
    assert str(e.value) == "failure_threshold=0: must be >= 1"
    with pytest.raises(ValueError) as e:
        CircuitBreaker(failure_threshold=1, open_seconds=-1)
    assert str(e.value) == "open_seconds=-1: must be >= 0"
    with pytest.raises(ValueError) as e:
        Endpoint("http://a:80", 0, TokenBucket(1, 1), CircuitBreaker(1, 1))
    assert str(e.value) == "concurrency=0: must be >= 1"
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=0, clock=clock)
    breaker.record_failure()
    assert breaker.state == "half_open" and breaker.allow()  # no pause: the next request probes
