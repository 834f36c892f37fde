"""Kafka plumbing shared by every stage: topic creation, clients, batched sends."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, ProducerClosed, TopicAlreadyExistsError, for_code
from aiokafka.partitioner import DefaultPartitioner

from backhaul import metrics
from backhaul.group_leave import leave_group
from backhaul.settings import settings
from schemas.topics import ALL_TOPICS, topic_name

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Out:
    """One record to produce. `partition` pins it (co-partitioned changelogs)."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


def connection_options(*, bootstrap: str | None = None, username: str | None = None,
                       password: str | None = None) -> dict[str, Any]:
    """Where and as whom a client connects: Backhaul's own user on the internal listener unless
    told otherwise (SASL/SCRAM-SHA-512 when there is a password, plaintext without)."""
    s = settings()
    username = username or s.kafka_username
    password = s.kafka_password if password is None else password
    options: dict[str, Any] = {"bootstrap_servers": bootstrap or s.kafka_bootstrap}
    if password:
        options.update(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                       sasl_plain_username=username, sasl_plain_password=password)
    return options


def make_admin(**overrides: Any) -> AIOKafkaAdminClient:
    """An admin client as Backhaul's own user."""
    return AIOKafkaAdminClient(**{**connection_options(), "request_timeout_ms": 10000, **overrides})


def make_gateway_producer(username: str, password: str, **overrides: Any) -> AIOKafkaProducer:
    """A producer as a base-station gateway: its own credentials, on the gateway listener."""
    return make_producer(**connection_options(bootstrap=settings().kafka_gateway, username=username,
                                              password=password), **overrides)


async def ensure_topics(*, bootstrap: str | None = None, partitions: int | None = None,
                        prefix: str | None = None, wait_s: float = 60.0) -> None:
    """Create every topic Backhaul uses that does not exist yet (waits for the broker)."""
    s = settings()
    bootstrap = bootstrap or s.kafka_bootstrap
    partitions = partitions or s.kafka_partitions
    prefix = s.topic_prefix if prefix is None else prefix
    deadline = time.monotonic() + wait_s
    while True:
        admin = make_admin(bootstrap_servers=bootstrap)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = []
            for spec in ALL_TOPICS:
                name = topic_name(spec.name, prefix)
                if name in existing:
                    continue
                configs = {"min.insync.replicas": str(s.kafka_min_insync_replicas)}
                if spec.compacted:
                    configs.update({"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1",
                                    "segment.ms": "600000"})
                if spec.log_append_time:
                    configs["message.timestamp.type"] = "LogAppendTime"
                missing.append(NewTopic(name, partitions, s.kafka_replication_factor, topic_configs=configs))
            if missing:
                try:
                    response = await admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    response = None
                # The broker answers each topic on its own: aiokafka raises for none of them.
                answers = [(e[0], e[1], e[2] if len(e) > 2 else None)  # v0 answers carry no message
                           for e in (response.topic_errors if response is not None else [])]
                refused = [a for a in answers if a[1] not in (0, TopicAlreadyExistsError.errno)]
                if refused:
                    reasons: dict[str, list[str]] = {}
                    for name, code, message in refused:
                        reasons.setdefault(message or for_code(code).__name__, []).append(name)
                    raise RuntimeError("Kafka refused to create topics: " + "; ".join(
                        f"{', '.join(names)}: {reason}" for reason, names in reasons.items()))
                log.info("topics created", extra={"topics": [t.name for t in missing]})
            return
        except (KafkaConnectionError, OSError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {bootstrap} is not reachable: {exc}") from exc
            await asyncio.sleep(1.0)
        finally:
            await admin.close()


def make_producer(**overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for the broker's acknowledgement."""
    options = dict(
        **connection_options(),
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=30000,
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(*topics: str, group: str | None, instance_id: str | None = None,
                  **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that never commits by itself: stages commit after their outputs are durable.

    With `instance_id` (and a group) it is a static member of the group (KIP-345): restarted within
    its session it gets its partitions back without a rebalance. Stop it with `stop_consumer`."""
    s = settings()
    options = dict(
        **connection_options(),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5000,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        # Why these three: see Settings (kafka_session_timeout_ms).
        session_timeout_ms=s.kafka_session_timeout_ms,
        heartbeat_interval_ms=s.kafka_heartbeat_ms,
        rebalance_timeout_ms=s.kafka_rebalance_timeout_ms,
    )
    if group is not None and instance_id:
        options["group_instance_id"] = instance_id
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def stop_consumer(consumer: AIOKafkaConsumer, group: str, instance_id: str | None) -> None:
    """Stop a consumer for good: a static member also leaves its group, so that its partitions
    go to the other members now rather than when its session times out (backhaul.group_leave)."""
    await consumer.stop()
    if instance_id:
        await leave_group(make_admin(request_timeout_ms=5000), group, instance_id)


Partitions = set[TopicPartition]


class GroupConsumer:
    """A member of a consumer group, as every stage and the delivery worker run one: subscribed with
    the owner's rebalance hooks, its lag exported (`backhaul_consumer_lag`, `report_lag`) while it
    runs, and stopped with `stop_consumer` (a static member leaves its group)."""

    def __init__(self, group: str, topics: Sequence[str], *, instance_id: str | None,
                 revoked: Callable[[Partitions], Awaitable[None]],
                 assigned: Callable[[Partitions], Awaitable[None]] | None = None, **options: Any) -> None:
        self.group = group
        self.topics = list(topics)
        self.instance_id = instance_id
        self.consumer = make_consumer(group=group, instance_id=instance_id, **options)
        self._listener = _Rebalance(revoked, assigned)
        self._lag: asyncio.Task[None] | None = None

    async def start(self) -> AIOKafkaConsumer:
        """Subscribe, join the group and start reporting the lag; returns the consumer."""
        self.consumer.subscribe(self.topics, listener=self._listener)
        await self.consumer.start()
        self._lag = asyncio.create_task(report_lag(self.consumer, self.group))
        return self.consumer

    async def stop(self) -> None:
        if self._lag is not None:
            self._lag.cancel()
        await stop_consumer(self.consumer, self.group, self.instance_id)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types: its base is Any
    """Calls the owner's hooks: `revoked` before partitions go, `assigned` once new ones came."""

    def __init__(self, revoked: Callable[[Partitions], Awaitable[None]],
                 assigned: Callable[[Partitions], Awaitable[None]] | None) -> None:
        self.revoked = revoked
        self.assigned = assigned

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        if self.assigned is not None:
            await self.assigned(set(assigned))


class RecordTooLarge(ValueError):
    """An output record over BACKHAUL_KAFKA_MAX_RECORD_BYTES, refused before anything is sent.

    Sending it would not only fail: an idempotent producer whose record the
    broker refused for its size is left out of sequence for that partition
    and fails every later send (OutOfOrderSequenceNumber).
    """


def check_sizes(records: Sequence[Out]) -> None:
    """RecordTooLarge when one of `records` exceeds the broker's limit (then none may be sent)."""
    limit = settings().kafka_max_record_bytes
    for r in records:
        size = len(r.key or b"") + len(r.value or b"")
        if size > limit:
            raise RecordTooLarge(f"a record for {r.topic} is {size} bytes, over the limit of {limit} bytes")


_PARTITIONER = DefaultPartitioner()  # the producer's own: a keyed record lands where `producer.send` puts it


async def queue_batches(producer: AIOKafkaProducer, records: Sequence[Out]) -> list[tuple[list[int], asyncio.Future[Any]]]:
    """Queue `records` on `producer` as one batch per partition (more when one fills up), keeping their
    order within a partition; each goes to its pinned partition or where the producer's partitioner would
    put its key. Per batch, the indexes of its records and the future of its acknowledgement.

    Why not `producer.send` per record: it costs about 9 us of CPU a record where a batch built at
    once costs about 3 (aiokafka 0.14, this machine; bench/README.md, issue 19)."""
    by_partition: dict[tuple[str, int], list[int]] = {}
    partitions: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        partition = r.partition
        if partition is None:
            known = partitions.get(r.topic)
            if known is None:
                known = partitions[r.topic] = sorted(await producer.partitions_for(r.topic))
            partition = _PARTITIONER(r.key, known, known)
        by_partition.setdefault((r.topic, partition), []).append(i)
    queued: list[tuple[list[int], asyncio.Future[Any]]] = []
    for (name, partition), indexes in by_partition.items():
        batch, members = producer.create_batch(), list[int]()
        for i in indexes:
            r = records[i]
            if batch.append(key=r.key, value=r.value, timestamp=None) is None:  # full: the first always fits
                batch.close()
                queued.append((members, await _send_batch(producer, batch, name, partition)))
                batch, members = producer.create_batch(), []
                batch.append(key=r.key, value=r.value, timestamp=None)
            members.append(i)
        batch.close()
        queued.append((members, await _send_batch(producer, batch, name, partition)))
    return queued


async def _send_batch(producer: AIOKafkaProducer, batch: Any, name: str, partition: int) -> asyncio.Future[Any]:
    """`producer.send_batch`, failing (ProducerClosed) when the producer began stopping meanwhile.

    aiokafka 0.14's `send_batch` checks that the producer is open only before it waits for the partition's
    previous batch to be drained (its `send` checks after the wait too): a batch it appends once a stop has
    begun may never be sent nor failed, and whoever awaits it waits for ever (seen: the chaos test of a
    Kafka outage hung so). The caller sends such records again on a new producer."""
    future = await producer.send_batch(batch, name, partition=partition)
    if producer._closed:  # no public way to ask
        raise ProducerClosed()
    return cast("asyncio.Future[Any]", future)


async def send_all(producer: AIOKafkaProducer, records: Iterable[Out]) -> int:
    """Send records and wait until the broker has acknowledged every one of them.

    Raises RecordTooLarge, sending nothing, when one of them exceeds the broker's limit."""
    records = list(records)
    check_sizes(records)
    if not records:
        return 0
    await asyncio.gather(*(future for _, future in await queue_batches(producer, records)))
    return len(records)


async def report_lag(consumer: AIOKafkaConsumer, group: str, every_s: float = 5.0) -> None:
    """Keep `backhaul_consumer_lag` current for the consumer's partitions (runs until cancelled)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            assignment = consumer.assignment()
            if not assignment:
                continue
            ends = await consumer.end_offsets(list(assignment))
            for tp in assignment:
                position = await consumer.position(tp)
                metrics.CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(max(0, ends[tp] - position))
        except asyncio.CancelledError:
            raise
        except Exception:  # lag is best effort; never let it stop the stage
            log.debug("lag report failed", exc_info=True)
