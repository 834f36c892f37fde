"""The local configuration view every stream worker reads instead of the database.

The relay publishes each changed entity to the compacted `config` topic as
`<entity>:<id>` -> the row as JSON (or a tombstone when deleted). A view reads
the topic from the beginning, keeps the latest value of every key in memory and
then follows the topic, so a change made through the API reaches every worker
in milliseconds, without a database round trip per frame, and workers go on
with their last view while PostgreSQL is down.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from backhaul import metrics
from backhaul.failures import is_infrastructure
from backhaul.kafka import make_consumer
from backhaul.topics import topic
from schemas.config_records import ConfigRow, decode_config_row, split_config_key
from schemas.topics import CONFIG

log = logging.getLogger(__name__)

# listener(entity, id, row_or_None)
Listener = Callable[[str, str, dict[str, Any] | None], object]

FOLLOW_PAUSE_FIRST_S = 0.5
FOLLOW_PAUSE_MAX_S = 10.0


class ConfigView:
    """In-memory, always-current copy of the configuration the stream needs."""

    def __init__(self) -> None:
        self.devices: dict[str, dict[str, Any]] = {}
        self.device_types: dict[str, dict[str, Any]] = {}
        self.callbacks: dict[str, dict[str, Any]] = {}
        self.stations: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.contracts: dict[str, dict[str, Any]] = {}
        # device type id -> callbacks of that type (rebuilt lazily on change)
        self._callbacks_by_type: dict[str, list[dict[str, Any]]] | None = None
        self.records_applied = 0
        self.version = 0
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.caught_up = asyncio.Event()
        self._listeners: list[Listener] = []

    def _table(self, entity: str) -> dict[str, dict[str, Any]] | None:
        return {
            "device": self.devices, "deviceType": self.device_types, "callback": self.callbacks,
            "station": self.stations, "group": self.groups, "contract": self.contracts,
        }.get(entity)

    def apply(self, key: bytes | str, value: bytes | ConfigRow | None) -> None:
        """Apply one config record (`schemas.config_records`; used by the follower task and by tests)."""
        entity, ident = split_config_key(key)
        table = self._table(entity)
        if table is None:
            return
        if value is None:
            table.pop(ident, None)
        else:
            row = decode_config_row(f"{entity}:{ident}", value)
            table[ident] = row
            changed_at = row.get("_changed_at")
            if changed_at and self.caught_up.is_set():  # loading at start-up is not propagation
                metrics.CONFIG_PROPAGATION.observe(max(0.0, time.time() - changed_at / 1000))
        if entity == "callback":
            self._callbacks_by_type = None
        self.records_applied += 1
        self.version += 1
        metrics.CONFIG_RECORDS.labels(entity).inc()
        for listener in self._listeners:
            listener(entity, ident, table.get(ident))

    def on_change(self, listener: Listener) -> None:
        """Call `listener(entity, id, row_or_None)` after each applied change."""
        self._listeners.append(listener)

    def callbacks_for(self, device_type_id: str) -> list[dict[str, Any]]:
        """Every callback of a device type (enabled or not)."""
        if self._callbacks_by_type is None:
            index: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for cb in self.callbacks.values():
                index[cb["device_type_id"]].append(cb)
            self._callbacks_by_type = dict(index)
        return self._callbacks_by_type.get(device_type_id, [])

    async def start(self, *, wait: bool = True, timeout_s: float = 60.0) -> None:
        """Load the whole topic, then keep following it in the background."""
        name = topic(CONFIG)
        # A long poll: a change is returned as soon as it lands, and an idle view costs nothing.
        self._consumer = make_consumer(group=None, fetch_max_wait_ms=500)
        await self._consumer.start()
        deadline = time.monotonic() + timeout_s
        # A consumer subscribed to nothing knows no topic yet: ask the broker at once (a worker's restart
        # waits for this), then every 0.5 s while the topic does not exist.
        await self._consumer._client.force_metadata_update()
        partitions = self._consumer.partitions_for_topic(name)
        while not partitions:
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {name} does not exist; run `backhaul migrate` / ensure_topics")
            await asyncio.sleep(0.5)
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(name)
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        ends = await self._consumer.end_offsets(tps)
        self._task = asyncio.create_task(self._follow(ends))
        if wait:
            await asyncio.wait_for(self.caught_up.wait(), timeout_s)
        log.info("config view loaded", extra={"records": self.records_applied,
                                               "devices": len(self.devices), "callbacks": len(self.callbacks)})

    async def _follow(self, ends: dict[TopicPartition, int]) -> None:
        pending = {tp for tp, end in ends.items() if end > 0}
        if not pending:
            self.caught_up.set()
        pause = FOLLOW_PAUSE_FIRST_S
        while True:
            try:
                pending = await self._read(pending, ends)
                pause = FOLLOW_PAUSE_FIRST_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Kafka away (or anything else): the view keeps what it has and follows on, never stops.
                if is_infrastructure(exc):
                    metrics.INFRA_ERRORS.labels("config-view", "kafka").inc()
                log.warning("config view could not read the config topic: trying again", exc_info=exc,
                            extra={"retryInS": pause})
                await asyncio.sleep(pause)
                pause = min(FOLLOW_PAUSE_MAX_S, pause * 2)

    async def _read(self, pending: set[TopicPartition], ends: dict[TopicPartition, int]) -> set[TopicPartition]:
        """Apply one batch of the config topic; returns the partitions still being loaded."""
        assert self._consumer is not None  # set in start(), before the follower task
        batch = await self._consumer.getmany(timeout_ms=200, max_records=10000)
        for tp, records in batch.items():
            for rec in records:
                try:
                    self.apply(rec.key, rec.value)
                except Exception:
                    # A record the view cannot read must not stop it following the others.
                    log.exception("config record skipped", extra={"partition": tp.partition,
                                                                  "offset": rec.offset})
            if tp in pending and records[-1].offset + 1 >= ends[tp]:
                pending.discard(tp)
        if pending:
            for tp in list(pending):
                if await self._consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        if not pending and not self.caught_up.is_set():
            self.caught_up.set()
        return pending

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._consumer:
            await self._consumer.stop()
