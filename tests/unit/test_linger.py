"""The AWS channels' batch accumulator (workers.channels.linger): batches within the service's limits, every
entry answered exactly once with its own result, a whole-request failure given to each entry, an entry over
the single-entry limit failed alone; hypothesis over arrival patterns and sizes."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.channels.linger import Limits, Linger, TooLarge

LIMITS = Limits(count=4, bytes=100, entry_bytes=60)


class Service:
    """A batch call that records each request and answers entry i with ("ok", entry), or fails some entries."""

    def __init__(self, fail_entries: frozenset[int] = frozenset(), fail_request: bool = False) -> None:
        self.requests: list[tuple[str, list[tuple[int, int]]]] = []
        self.fail_entries = fail_entries
        self.fail_request = fail_request

    async def flush(self, key: str, entries: list[tuple[int, int]]) -> list[tuple[str, int]]:
        self.requests.append((key, list(entries)))
        await asyncio.sleep(0)
        if self.fail_request:
            raise ConnectionError("AWS is away")
        return [("failed" if n in self.fail_entries else "ok", n) for n, _ in entries]


async def test_a_full_batch_goes_at_once_and_a_partial_one_after_the_linger():
    service = Service()
    linger = Linger(LIMITS, 0.05, service.flush)
    full = await asyncio.wait_for(asyncio.gather(*(linger.submit("q", (n, 1), 1) for n in range(4))), 0.04)
    assert full == [("ok", n) for n in range(4)] and len(service.requests) == 1, "count limit: no linger"
    started = asyncio.get_running_loop().time()
    assert await linger.submit("q", (9, 1), 1) == ("ok", 9)
    assert asyncio.get_running_loop().time() - started >= 0.045, "a lone entry waits the linger for company"


async def test_bytes_close_a_batch_before_the_entry_that_would_overflow_it():
    service = Service()
    linger = Linger(LIMITS, 0.01, service.flush)
    await asyncio.gather(*(linger.submit("q", (n, 40), 40) for n in range(3)))
    assert [[n for n, _ in entries] for _, entries in service.requests] == [[0, 1], [2]]


async def test_each_entry_gets_its_own_answer_and_a_failed_request_fails_every_entry_alike():
    linger = Linger(LIMITS, 0.01, Service(fail_entries=frozenset({1})).flush)
    assert await asyncio.gather(*(linger.submit("q", (n, 1), 1) for n in range(3))) == [
        ("ok", 0), ("failed", 1), ("ok", 2)]
    down = Linger(LIMITS, 0.01, Service(fail_request=True).flush)
    answers = await asyncio.gather(*(down.submit("q", (n, 1), 1) for n in range(3)), return_exceptions=True)
    assert [str(a) for a in answers] == ["AWS is away"] * 3


async def test_an_entry_over_the_single_entry_limit_fails_alone_and_is_never_sent():
    service = Service()
    linger = Linger(LIMITS, 0.01, service.flush, what="record")
    with pytest.raises(TooLarge, match="record of 61 bytes is over the service's limit of 60 bytes for one record"):
        await linger.submit("q", (0, 61), 61)
    assert await linger.submit("q", (1, 60), 60) == ("ok", 1)
    assert service.requests == [("q", [(1, 60)])]


async def test_close_flushes_what_is_open():
    service = Service()
    linger = Linger(LIMITS, 60.0, service.flush)
    waiting = asyncio.ensure_future(linger.submit("q", (0, 1), 1))
    await asyncio.sleep(0)
    await linger.close()
    assert await waiting == ("ok", 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(1, 80), st.integers(0, 3)), min_size=1, max_size=40),
       st.frozensets(st.integers(0, 39)))
def test_never_over_the_limits_and_every_entry_answered_exactly_once(arrivals, failing):
    async def run() -> None:
        service = Service(fail_entries=failing)
        linger = Linger(LIMITS, 0.002, service.flush)
        tasks = []
        for n, (key, size, pause) in enumerate(arrivals):
            tasks.append(asyncio.ensure_future(linger.submit(key, (n, size), size)))
            for _ in range(pause):
                await asyncio.sleep(0)
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        for n, ((_, size, _), answer) in enumerate(zip(arrivals, answers, strict=True)):
            if size > LIMITS.entry_bytes:
                assert isinstance(answer, TooLarge), "too large: failed alone"
            else:
                assert answer == ("failed" if n in failing else "ok", n), "its own answer"
        sent = [n for _, entries in service.requests for n, _ in entries]
        assert sorted(sent) == [n for n, (_, size, _) in enumerate(arrivals) if size <= LIMITS.entry_bytes], \
            "every entry sent exactly once"
        for key, entries in service.requests:
            assert 1 <= len(entries) <= LIMITS.count
            assert sum(size for _, size in entries) <= LIMITS.bytes
            assert all(arrivals[n][0] == key for n, _ in entries), "a batch holds one target's entries"
    asyncio.run(run())
