"""Records that many tasks send at about the same time, written to Kafka together.

The delivery worker publishes two small records per request (the announcement before it, the result
after it), each from its own task, each awaited until the broker has it. Sent one by one, a record
costs about 20 us of CPU in aiokafka's `send` and its future; gathered over one turn of the event loop
and queued as one batch per partition (`backhaul.kafka.queue_batches`), about 3. A caller still waits
for its own records only: its `send` returns once every batch holding one of them is acknowledged, and
raises the first failure among those batches (the caller retries its records, as with `send_all`).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from backhaul.kafka import Out, check_sizes, queue_batches


class _Waiter:
    """One caller's records: how many of their batches are still unacknowledged, and its future."""

    __slots__ = ("future", "left")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.left = 0

    def batch_done(self, batch: asyncio.Future[Any]) -> None:
        if self.future.done():
            return
        if batch.cancelled():
            self.future.set_exception(ConnectionAbortedError("the producer closed before the broker answered"))
        elif (exc := batch.exception()) is not None:
            self.future.set_exception(exc)
        else:
            self.left -= 1
            if self.left == 0:
                self.future.set_result(None)


class Outbox:
    """Gathers the records sent during one turn of the event loop and queues them together on the producer
    `producer()` gives at that moment (a worker may replace a failed one)."""

    def __init__(self, producer: Callable[[], AIOKafkaProducer | None]) -> None:
        self._producer = producer
        self._pending: list[tuple[list[Out], _Waiter]] = []
        self._task: asyncio.Task[None] | None = None

    async def send(self, records: list[Out]) -> None:
        """Send `records` and wait until the broker has acknowledged each of them.

        Raises RecordTooLarge, sending none of them, when one exceeds the broker's limit."""
        check_sizes(records)
        if not records:
            return
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future())
        waiter.future.add_done_callback(_retrieved)  # a caller that gave up leaves its failure unread
        self._pending.append((records, waiter))
        if self._task is None:
            self._task = loop.create_task(self._flush())
        await asyncio.shield(waiter.future)

    async def _flush(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # the other tasks of this turn add theirs
                taken, self._pending = self._pending, []
                records = [r for rs, _ in taken for r in rs]
                owners = [w for rs, w in taken for _ in rs]
                try:
                    producer = self._producer()
                    if producer is None:
                        raise ConnectionAbortedError("no producer")
                    queued = await queue_batches(producer, records)
                except asyncio.CancelledError:
                    for _, waiter in taken + self._pending:
                        if not waiter.future.done():
                            waiter.future.set_exception(ConnectionAbortedError("the outbox stopped"))
                    raise
                except Exception as exc:
                    for _, waiter in taken:
                        if not waiter.future.done():
                            waiter.future.set_exception(exc)
                    continue
                for indexes, batch in queued:
                    waiters = {id(owners[i]): owners[i] for i in indexes}.values()
                    for waiter in waiters:
                        waiter.left += 1
                    for waiter in waiters:
                        batch.add_done_callback(waiter.batch_done)
        finally:
            self._task = None


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
