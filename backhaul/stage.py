"""The consume-process-produce loop every stream stage runs on.

A stage reads a batch with `getmany`, turns it into output records, waits until
Kafka has acknowledged all of them, lets the stage persist its own state, and
only then commits the batch's offsets. A crash at any point therefore replays
the batch; stages make their outputs idempotent with stable ids.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from backhaul.kafka import Out, make_consumer, make_producer, report_lag, send_all
from schemas.topics import topic

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord]]


class Stage:
    """Base class of a stream stage. Subclasses implement `process` and may
    implement `tick`, `persist`, `on_assigned` and `on_revoked`."""

    name: str = "stage"
    group: str = "backhaul-stage"
    topics: Sequence[str] = ()
    tick_interval_s: float = 0.1
    max_records: int = 5000
    # Let the broker gather up to 64 KiB or 25 ms per fetch instead of answering every
    # fetch with the few records that arrived since the last one: bigger batches mean
    # fewer fetch, produce and commit requests and PostgreSQL transactions per message
    # (`backhaul bench` at 1,000 messages/s: -22% CPU per message in the stage
    # processes, -30% in Kafka, -25% in PostgreSQL), for at most 25 ms of added
    # latency per stage when traffic is light. See bench/README.md.
    fetch_min_bytes: int = 64 * 1024
    fetch_max_wait_ms: int = 25

    def __init__(self) -> None:
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.batches = 0
        # Partitions whose `on_assigned` has finished; records of others are not processed yet.
        self._restored: set[TopicPartition] = set()

    # Hooks -------------------------------------------------------------
    async def start(self) -> None:
        """Open resources the stage needs before consuming."""

    async def close(self) -> None:
        """Release the stage's resources."""

    def process(self, batch: Batch) -> list[Out]:
        """Turn one batch of records into output records."""
        raise NotImplementedError

    async def before_tick(self) -> None:
        """Refresh what `tick` needs from Kafka (called before every tick)."""

    def tick(self) -> list[Out]:
        """Outputs due by the wall clock (window deadlines, keep-alive)."""
        return []

    async def persist(self) -> None:
        """Make the stage's own state durable; called after outputs are acknowledged."""

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions were assigned: restore their state."""

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions are going away: forget their state."""

    # Loop --------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Run until `stop()`; commits after every batch whose outputs are durable."""
        self.producer = make_producer()
        await self.producer.start()
        self.consumer = make_consumer(group=topic(self.group), max_poll_records=self.max_records,
                                      fetch_min_bytes=self.fetch_min_bytes,
                                      fetch_max_wait_ms=self.fetch_max_wait_ms)
        await self.start()
        self.consumer.subscribe(list(self.topics), listener=_Listener(self))
        await self.consumer.start()
        log.info("stage started", extra={"stage": self.name, "topics": list(self.topics)})
        lag_task = asyncio.create_task(report_lag(self.consumer, topic(self.group)))
        try:
            while not self._stopping.is_set():
                batch = await self.consumer.getmany(timeout_ms=int(self.tick_interval_s * 1000),
                                                    max_records=self.max_records)
                async with self._lock:
                    self._hold_back_unrestored(batch)
                    await self._handle(batch)
                if not self.ready.is_set() and self.consumer.assignment():
                    self.ready.set()
        finally:
            lag_task.cancel()
            await self.consumer.stop()
            await self.producer.stop()
            await self.close()
            log.info("stage stopped", extra={"stage": self.name})

    async def _handle(self, batch: Batch) -> None:
        outputs = self.process(batch) if batch else []
        await self.before_tick()
        outputs.extend(self.tick())
        if outputs:
            await send_all(self.producer, outputs)
        await self.persist()
        if batch:
            offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "") for tp, records in batch.items()}
            await self.consumer.commit(offsets)
        self.batches += 1

    def _hold_back_unrestored(self, batch: Batch) -> None:
        # aiokafka may fetch a newly assigned partition while its state is still
        # being restored: rewind such records and read them again afterwards.
        for tp in [tp for tp in batch if tp not in self._restored]:
            self.consumer.seek(tp, batch.pop(tp)[0].offset)

    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        # Wait for the batch in hand to be fully committed before letting go.
        async with self._lock:
            self._restored -= revoked
            await self.on_revoked(revoked)

    async def _assign(self, assigned: set[TopicPartition]) -> None:
        async with self._lock:
            await self.on_assigned(assigned)
            self._restored |= assigned


class _Listener(ConsumerRebalanceListener):
    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked) -> None:
        await self.stage._revoke(set(revoked))

    async def on_partitions_assigned(self, assigned) -> None:
        await self.stage._assign(set(assigned))
