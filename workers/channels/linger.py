"""A channel-side batch accumulator ("linger", like a Kafka producer's linger.ms) for services whose batch
call answers each entry on its own (Kinesis PutRecords, SQS SendMessageBatch).

Each delivery's `send` adds its entry to the open batch of its target (`submit`) and awaits its own result.
A batch is flushed as soon as it is full (`Limits.count` entries, or the next entry would take it past
`Limits.bytes`) or `linger_s` after its first entry. `flush(key, entries)` makes the one request and returns
one result per entry, in order; if it raises, every entry of the batch gets that same exception. An entry
larger than `Limits.entry_bytes` fails alone (`TooLarge`), before any batch. How many entries wait together
is bounded by the caller: the delivery loop's endpoint bulkhead (its concurrency) lets only that many sends in.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
E = TypeVar("E")
R = TypeVar("R")


@dataclass(frozen=True)
class Limits:
    """A service's limits on one batch request: entries, bytes in all, bytes of one entry."""

    count: int
    bytes: int
    entry_bytes: int


class TooLarge(ValueError):
    """An entry over the service's limit for one entry; it is never sent."""


@dataclass
class _Batch(Generic[E, R]):
    entries: list[E] = field(default_factory=list)
    futures: list[asyncio.Future[R]] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class Linger(Generic[K, E, R]):
    """Open batches by key (a target: an account and a queue or stream), flushed when full or after `linger_s`."""

    def __init__(self, limits: Limits, linger_s: float, flush: Callable[[K, list[E]], Awaitable[list[R]]],
                 what: str = "entry") -> None:
        self.limits = limits
        self.linger_s = linger_s
        self._flush = flush
        self._what = what
        self._open: dict[K, _Batch[E, R]] = {}
        self._flushing: set[asyncio.Task[None]] = set()

    async def submit(self, key: K, entry: E, size: int) -> R:
        """Add `entry` (`size` bytes, as the service counts them) to the batch of `key`; its own result."""
        if size > self.limits.entry_bytes:
            raise TooLarge(f"{self._what} of {size} bytes is over the service's limit of {self.limits.entry_bytes} "
                           f"bytes for one {self._what}")
        batch = self._open.get(key)
        if batch is not None and (len(batch.entries) >= self.limits.count or batch.size + size > self.limits.bytes):
            self._close(key, batch)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch()
            batch.timer = asyncio.get_running_loop().call_later(self.linger_s, self._close, key, batch)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # a caller that gave up leaves its failure unread
        batch.entries.append(entry)
        batch.futures.append(future)
        batch.size += size
        if len(batch.entries) >= self.limits.count or batch.size >= self.limits.bytes:
            self._close(key, batch)
        return await asyncio.shield(future)  # a caller that gives up leaves the batch's answer to the others

    def _close(self, key: K, batch: _Batch[E, R]) -> None:
        """Take `batch` out of the open ones (once) and start its request."""
        if self._open.get(key) is not batch:
            return
        del self._open[key]
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._send(key, batch))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _send(self, key: K, batch: _Batch[E, R]) -> None:
        try:
            results = await self._flush(key, batch.entries)
            if len(results) != len(batch.entries):
                raise RuntimeError(f"{len(results)} results for {len(batch.entries)} entries")
        except asyncio.CancelledError:
            self._answer(batch, exception=ConnectionAbortedError("the channel closed before the service answered"))
            raise
        except Exception as exc:
            self._answer(batch, exception=exc)
        else:
            self._answer(batch, results=results)

    @staticmethod
    def _answer(batch: _Batch[E, R], *, results: list[R] | None = None, exception: BaseException | None = None) -> None:
        for i, future in enumerate(batch.futures):
            if future.done():
                continue
            if results is not None:
                future.set_result(results[i])
            else:
                assert exception is not None  # pragma: no mutate (narrows)
                future.set_exception(exception)

    async def close(self) -> None:
        """Flush what is open and wait for every batch in flight."""
        for key, batch in list(self._open.items()):
            self._close(key, batch)
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)


def _retrieved(future: asyncio.Future[R]) -> None:
    if not future.cancelled():
        future.exception()
