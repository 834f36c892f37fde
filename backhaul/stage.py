"""The consume-process-produce loop every stream stage runs on.

A stage reads a batch with `getmany`, turns it into output records, waits until
Kafka has acknowledged all of them, lets the stage persist its own state, and
only then commits the batch's offsets. A crash at any point therefore replays
the batch; stages make their outputs idempotent with stable ids.

No record can stop a stage or make it crash-loop:

- **One record at a time.** A stage handles each record inside `each_record`
  (or its own loop calling `dead_letter`): a record whose handling raises is
  moved to `dead-letters` (`backhaul.dead_letters`) with its error, the
  outputs it had started are dropped, and the batch goes on. Its offset is
  committed with the batch's.
- **Infrastructure is waited for.** A step that fails because Kafka or
  PostgreSQL is unreachable (`backhaul.failures.is_infrastructure`) is tried
  again with a growing pause (0.5 s to 30 s), for as long as it takes: such a
  failure never dead-letters anything and nothing is skipped. Each such
  failure is counted (`backhaul_infrastructure_errors_total{stage,dependency}`),
  and after a Kafka failure of a step that produces, the step is tried again
  on a new producer (an idempotent producer whose send failed may be out of
  sequence for good, and aiokafka's keeps asking for metadata without a pause
  while the broker is away).
- **Anything else that escapes** (a failure while persisting or publishing a
  batch, say an output the broker refuses) rewinds the batch and restores the
  state of its partitions as a restart would (`on_revoked` then
  `on_assigned`), then tries the batch again. After `dead_letter_attempts`
  (3) failures in a row the batch is handled one record per commit, each
  record tried up to that many times, and the record that still fails is
  dead-lettered. Stateful stages are safe: a record is never handled twice
  on top of the state it already changed.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, RebalanceInProgressError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from backhaul import metrics
from backhaul.dead_letters import Pending, announce, dead_letter
from backhaul.failures import dependency_of, is_infrastructure
from backhaul.kafka import GroupConsumer, Out, make_producer, send_all
from backhaul.settings import settings
from backhaul.topics import topic

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord]]
T = TypeVar("T")

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
# How long a producer being thrown away may take to stop (it flushes what it still holds).
PRODUCER_STOP_S = 5.0


class Stage:
    """Base class of a stream stage. Subclasses implement `process` and may
    implement `tick`, `persist`, `on_assigned`, `on_revoked` and `commit_position`,
    and set `consumer_options`."""

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
    # The worker's stable identity in its consumer groups (program.instances); None = a dynamic member.
    instance_id: str | None = None
    # More options for the stage's consumer (e.g. an assignor that keeps its topics co-partitioned).
    consumer_options: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        # Partitions whose `on_assigned` has finished; records of others are not processed yet.
        self._restored: set[TopicPartition] = set()
        self.dead_letter_attempts = settings().dead_letter_attempts
        # Dead letters made while handling the batch in hand, published before its commit.
        self._dead: list[Pending] = []
        self._failures = 0  # consecutive failures of the batch in hand
        self._one_by_one = False

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

    def commit_position(self, tp: TopicPartition, records: list[ConsumerRecord]) -> int:
        """The offset to commit for `tp` once `records` (its last handled) are done: the next one by
        default; a stage that keeps state only in memory may commit less, to read it again."""
        return int(records[-1].offset) + 1

    async def persist(self) -> None:
        """Make the stage's own state durable; called after outputs are acknowledged.
        May be called again after a failure: it must keep what it has not written yet."""

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions were assigned: restore their state."""

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions are going away: forget their state."""

    # Per-record isolation ------------------------------------------------
    def each_record(self, batch: Batch,
                    handle: Callable[[TopicPartition, ConsumerRecord, list[Out]], None]) -> list[Out]:
        """Call `handle(tp, record, outputs)` for every record, in order; a record whose
        handling raises is dead-lettered and the outputs it had added are dropped."""
        outputs: list[Out] = []
        for tp, records in batch.items():
            for rec in records:
                mark = len(outputs)
                try:
                    handle(tp, rec, outputs)
                except Exception as exc:
                    del outputs[mark:]
                    self.dead_letter(rec, exc)
        return outputs

    def dead_letter(self, rec: ConsumerRecord, exc: BaseException, attempts: int = 1) -> None:
        """Set `rec` aside in `dead-letters` (published with the batch, before its commit)."""
        self._dead.append(dead_letter(self.name, rec.topic, rec.partition, rec.offset, rec.key, rec.value,
                                      exc, attempts))

    # Loop --------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Run until `stop()`; commits after every batch whose outputs are durable."""
        self.producer = make_producer()
        await self.producer.start()
        member = GroupConsumer(topic(self.group), self.topics, instance_id=self.instance_id,
                               revoked=self._revoke, assigned=self._assign, max_poll_records=self.max_records,
                               fetch_min_bytes=self.fetch_min_bytes, fetch_max_wait_ms=self.fetch_max_wait_ms,
                               **self.consumer_options)
        self.consumer = member.consumer
        await self.start()
        await member.start()
        log.info("stage started", extra={"stage": self.name, "topics": list(self.topics)})
        try:
            while not self._stopping.is_set():
                if self.producer is None:  # stopped while a new one was being started
                    break
                batch = await self.consumer.getmany(timeout_ms=int(self.tick_interval_s * 1000),
                                                    max_records=self.max_records)
                async with self._lock:
                    self._hold_back_unrestored(batch)
                    await self._guarded(batch)
                if not self.ready.is_set():
                    assigned = self.consumer.assignment()
                    if assigned and assigned <= self._restored:  # joined, and its state is restored
                        self.ready.set()
        finally:
            await member.stop()
            if self.producer is not None:
                await self.producer.stop()
            await self.close()
            log.info("stage stopped", extra={"stage": self.name})

    async def _guarded(self, batch: Batch) -> None:
        """Handle a batch; on a failure, rewind it and try again, then record by record."""
        if self._one_by_one and batch:
            await self._record_by_record(batch)
            return
        try:
            await self._handle(batch)
            self._failures = 0
        except Exception as exc:
            if self._stopping.is_set():
                log.warning("stopping with a batch not committed: it will be read again",
                            extra={"stage": self.name})
                return
            if not batch:  # the clock's outputs failed: no record to blame, and nothing to rewind
                log.error("publishing the outputs due by the clock failed", exc_info=exc,
                          extra={"stage": self.name})
                await self._renew_producer_after(exc)
                return
            self._failures += 1
            log.error("batch failed: rewinding it to try again", exc_info=exc, extra={
                "stage": self.name, "failures": self._failures, "records": sum(map(len, batch.values()))})
            await self._renew_producer_after(exc)
            await self._rewind(batch)
            if self._failures >= self.dead_letter_attempts:
                self._one_by_one = True

    async def _record_by_record(self, batch: Batch) -> None:
        """Handle each record of `batch` as a batch of its own, committed alone; a record that
        fails `dead_letter_attempts` times is dead-lettered and its offset committed."""
        self._one_by_one = False
        self._failures = 0
        log.warning("handling a failing batch one record at a time", extra={
            "stage": self.name, "records": sum(map(len, batch.values()))})
        for tp, records in batch.items():
            for rec in records:
                failure: Exception | None = None
                for _ in range(self.dead_letter_attempts):
                    try:
                        await self._handle({tp: [rec]})
                        failure = None
                        break
                    except Exception as exc:
                        if self._stopping.is_set():
                            return
                        failure = exc
                        self._dead.clear()
                        await self._renew_producer_after(exc)
                        await self._reset({tp})  # the state as of the last commit: just before `rec`
                if failure is not None:
                    self.dead_letter(rec, failure, self.dead_letter_attempts)
                    await self._publish_dead()
                    await self._commit({tp: OffsetAndMetadata(self.commit_position(tp, [rec]), "")})

    async def _handle(self, batch: Batch) -> None:
        outputs = self.process(batch) if batch else []
        await self._io("read positions", self.before_tick)
        outputs.extend(self._tick())
        dead = self._take_dead()
        outputs.extend(d.out for d in dead)
        if outputs:
            await self._io("publish outputs", lambda: send_all(self.producer, outputs), produces=True)
        for d in dead:
            announce(d)
        await self._io("persist state", self.persist, produces=True)
        await self._publish_dead()  # records `persist` could not write
        if batch:
            await self._commit({tp: OffsetAndMetadata(self.commit_position(tp, records), "")
                                for tp, records in batch.items()})

    def _tick(self) -> list[Out]:
        try:
            return self.tick()
        except Exception:
            # Not a record's fault: nothing to dead-letter. Say it loudly and keep consuming.
            log.exception("tick failed: outputs due by the clock were not produced", extra={"stage": self.name})
            return []

    def _take_dead(self) -> list[Pending]:
        dead, self._dead = self._dead, []
        return dead

    async def _publish_dead(self) -> None:
        dead = self._take_dead()
        if dead:
            await self._io("publish dead letters", lambda: send_all(self.producer, [d.out for d in dead]),
                           produces=True)
            for d in dead:
                announce(d)

    async def _io(self, what: str, step: Callable[[], Awaitable[T]], *, produces: bool = False) -> T:
        """Run one step that talks to Kafka or PostgreSQL, waiting and trying again for as
        long as they are unreachable (on a new producer after a Kafka failure, if the step
        `produces`); any other failure is raised."""
        pause = RETRY_FIRST_S
        while True:
            try:
                return await step()
            except Exception as exc:
                if not is_infrastructure(exc) or self._stopping.is_set():
                    raise
                pause = await self._wait_out(what, exc, pause)
                if produces and dependency_of(exc) == "kafka":
                    await self._new_producer()

    async def _wait_out(self, what: str, exc: BaseException, pause: float) -> float:
        """Count and log an infrastructure failure, pause (unless stopping); returns the next pause."""
        metrics.INFRA_ERRORS.labels(self.name, dependency_of(exc)).inc()
        log.warning("Kafka or PostgreSQL unavailable: trying again", extra={
            "stage": self.name, "step": what, "dependency": dependency_of(exc), "errorType": type(exc).__name__,
            "error": str(exc)[:300], "retryInS": pause})
        try:
            await asyncio.wait_for(self._stopping.wait(), pause)
        except TimeoutError:
            pass
        return min(RETRY_MAX_S, pause * 2)

    async def _new_producer(self) -> None:
        """Throw the producer away and start a new one, waiting for Kafka for as long as it takes."""
        old, self.producer = self.producer, None
        if old is not None:
            try:
                await asyncio.wait_for(old.stop(), PRODUCER_STOP_S)
            except Exception:  # noqa: BLE001  (the old producer is being thrown away)
                log.debug("stopping the old producer failed", exc_info=True)
        pause = RETRY_FIRST_S
        while True:
            producer = make_producer()
            try:
                await producer.start()
                self.producer = producer
                return
            except Exception as exc:
                try:
                    await asyncio.wait_for(producer.stop(), PRODUCER_STOP_S)
                except Exception:  # noqa: BLE001
                    log.debug("stopping a producer that did not start failed", exc_info=True)
                if not is_infrastructure(exc) or self._stopping.is_set():
                    raise
                pause = await self._wait_out("start producer", exc, pause)

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        consumer = self.consumer
        assert consumer is not None  # set in run()
        try:
            await self._io("commit offsets", lambda: consumer.commit(offsets))
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            # The group rebalanced while the batch was in hand: the partitions' owner reads it again
            # from the last commit (outputs have stable ids), and a later commit covers this one.
            log.warning("commit refused after a rebalance", extra={"stage": self.name, "error": str(exc)[:300]})

    async def _renew_producer_after(self, exc: BaseException) -> None:
        """A send the broker refused leaves an idempotent producer out of sequence for good:
        after any failure from Kafka, start again with a new producer."""
        if isinstance(exc, KafkaError):
            await self._new_producer()

    async def _rewind(self, batch: Batch) -> None:
        """Read `batch` again from its first records, on the state of its partitions as last committed."""
        self._dead.clear()
        assert self.consumer is not None  # set in run()
        assigned = self.consumer.assignment()
        for tp, records in batch.items():
            if tp in assigned:
                self.consumer.seek(tp, records[0].offset)
        await self._reset(set(batch) & assigned)

    async def _reset(self, partitions: set[TopicPartition]) -> None:
        """Forget the partitions' state and restore it, as a restart would."""
        if not partitions:
            return
        await self._io("forget state", lambda: self.on_revoked(partitions))
        await self._io("restore state", lambda: self.on_assigned(partitions))

    def _hold_back_unrestored(self, batch: Batch) -> None:
        # aiokafka may fetch a newly assigned partition while its state is still
        # being restored: rewind such records and read them again afterwards.
        assert self.consumer is not None  # set in run()
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
