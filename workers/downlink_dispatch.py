"""The dispatch stage: granted downlinks -> (at the time they must leave) -> `downlink-transmissions`.

It reads the receptions of uplinks (`messages`: first, and duplicate for those asking a downlink), the
grants (`downlinks`) and the transmissions it made (its own output), all keyed
by device and read co-partitioned (the range assignor gives one member the same
partitions of the three). `workers.downlink_plan` decides: each grant leaves
`lead_s` before its uplink's receive window opens, from the station that heard
the uplink best by then, its DIRECT template rendered for that station. A
DIRECT template that cannot be rendered for it gives ACKNOWLEDGE
INVALID_CONFIGURATION instead (the router checked it on the first reception,
and every station id and rssi ingest lets through renders alike: a guard; the
event's id is stable, so deciding it again after a restart stores it once).

State is in memory only, so the stage commits its offsets trailing the wall
clock by `keep_s` (enough to hold every grant and the receptions it chooses
from): after a restart or a rebalance it reads that much again, rebuilds the
receptions and the grants waiting, and learns from its own output which were
sent (a batch that failed is read again the same way). It sends nothing of a
partition until it has read it up to where it stood when it was assigned, so a
grant sent before a restart is not sent again. A
grant read more than `keep_s` after it had to be at its station (the stage was
away longer than that) is dropped with a warning: no station could transmit it
any more, and whether one did is not known. A partition the stage's group never
committed (its first start) is read from `keep_s` ago, not from its beginning.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from aiokafka import TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.structs import ConsumerRecord

from backhaul import metrics
from backhaul.kafka import Out
from backhaul.settings import settings
from backhaul.stage import Batch, Stage
from backhaul.topics import topic
from callback_language.downlink import InfoCode, ack_event, downlink_timing
from schemas.device_events import encode_device_event
from schemas.downlinks import decode_downlink, decode_transmission, encode_downlink, transmission
from schemas.messages import decode_message
from schemas.topics import DEVICE_EVENTS, DOWNLINK_TRANSMISSIONS, DOWNLINKS, MESSAGES
from workers.downlink_plan import Departure, DownlinkPlan

log = logging.getLogger(__name__)

# How much of its topics the stage reads again after a restart, beyond the longest a grant waits.
KEEP_MARGIN_S = 60.0
# One commit mark per partition per this many ms: the trailing commit position is that coarse.
MARK_EVERY_MS = 1000


class DownlinkDispatchStage(Stage):
    name = "dispatch"
    group = "backhaul-dispatch"
    tick_interval_s = 0.1
    consumer_options: ClassVar[dict[str, Any]] = {"partition_assignment_strategy": (RangePartitionAssignor,)}

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        s = settings()
        self.clock = clock
        self.timing = downlink_timing(s)
        self.keep_ms = round((s.downlink_transmit_s + KEEP_MARGIN_S) * 1000)
        # One plan per partition number: the devices of partition p of the three topics.
        self.plans: dict[int, DownlinkPlan] = {}
        self._t_messages = topic(MESSAGES)
        self._t_downlinks = topic(DOWNLINKS)
        self._t_transmissions = topic(DOWNLINK_TRANSMISSIONS)
        self._t_events = topic(DEVICE_EVENTS)
        self.topics = (self._t_messages, self._t_downlinks, self._t_transmissions)
        self._catching_up: dict[TopicPartition, int] = {}  # partition -> its end when it was assigned
        self._marks: dict[TopicPartition, deque[tuple[int, int]]] = {}  # (record time, offset), oldest first

    def plan(self, partition: int) -> DownlinkPlan:
        if partition not in self.plans:
            self.plans[partition] = DownlinkPlan(self.timing, self.keep_ms)
        return self.plans[partition]

    # Reading ---------------------------------------------------------------
    def process(self, batch: Batch) -> list[Out]:
        now_ms = self._now_ms()
        outputs = self.each_record(batch, lambda tp, rec, out: self._read(tp, rec, now_ms))
        for tp, records in batch.items():
            marks = self._marks.setdefault(tp, deque())
            for rec in records:
                if not marks or rec.timestamp >= marks[-1][0] + MARK_EVERY_MS:
                    marks.append((rec.timestamp, rec.offset))
        return outputs

    def _read(self, tp: TopicPartition, rec: ConsumerRecord, now_ms: int) -> None:
        plan = self.plan(tp.partition)
        if tp.topic == self._t_messages:
            plan.heard(decode_message(rec.value), rec.timestamp)
        elif tp.topic == self._t_downlinks:
            grant = decode_downlink(rec.value)
            if grant["transmitBy"] < now_ms - self.keep_ms:
                log.warning("downlink grant too old to transmit: dropped", extra={
                    "downlink": grant["id"], "transmitBy": grant["transmitBy"], "readAt": now_ms})
                return
            plan.granted(grant)
        else:
            plan.sent(decode_transmission(rec.value))

    # Sending ---------------------------------------------------------------
    async def before_tick(self) -> None:
        assert self.consumer is not None  # set in run()
        for tp, end in list(self._catching_up.items()):
            if tp not in self.consumer.assignment() or await self.consumer.position(tp) >= end:
                del self._catching_up[tp]

    def tick(self) -> list[Out]:
        now_ms = self._now_ms()
        waiting = {tp.partition for tp in self._catching_up}  # a grant sent before may not be read back yet
        outputs: list[Out] = []
        for partition, plan in self.plans.items():
            if partition in waiting:
                continue
            outputs.extend(self._leave(d, now_ms) for d in plan.due(now_ms))
            plan.forget(now_ms - self.keep_ms)
        return outputs

    def _leave(self, departure: Departure, now_ms: int) -> Out:
        grant = departure.grant
        key = grant["device"].encode()
        if departure.data is None:
            metrics.DOWNLINKS.labels(str(int(InfoCode.INVALID_CONFIGURATION))).inc()
            event = ack_event(grant["device"], grant["id"], InfoCode.INVALID_CONFIGURATION,
                              device_type_id=grant.get("deviceTypeId"), group_id=grant.get("groupId"),
                              now_ms=now_ms, reason=f"Invalid configuration: {departure.problem}",
                              registration_id=grant.get("registrationId"), uplink_ms=grant.get("uplinkTime"))
            return Out(self._t_events, key, encode_device_event(event))
        record = transmission(grant, station=departure.station, rssi=departure.rssi, data_hex=departure.data,
                              now_ms=now_ms)
        log.info("downlink leaves for its station", extra={"downlink": grant["id"], "station": departure.station})
        return Out(self._t_transmissions, key, encode_downlink(record))

    # Offsets and restarts ------------------------------------------------------
    def commit_position(self, tp: TopicPartition, records: list[ConsumerRecord]) -> int:
        """The first offset a restart must read again: that of the mark from which on records may be of
        the last `keep_s` (marks are the first record of each second)."""
        # process() marked the batch's records; a record handled alone after a reset may have none yet
        marks = self._marks.setdefault(tp, deque([(records[0].timestamp, records[0].offset)]))
        horizon = self._now_ms() - self.keep_ms
        while len(marks) > 1 and marks[1][0] <= horizon:
            marks.popleft()
        return marks[0][1]

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Read each partition again from its committed offset (also after a rewind, which would start at
        the failed batch; never committed: from `keep_s` ago), and send nothing of it until it is read up
        to its present end."""
        consumer = self.consumer
        assert consumer is not None  # set in run()
        fresh = []
        for tp in partitions:
            committed = await consumer.committed(tp)
            if committed is None:
                fresh.append(tp)
            else:
                consumer.seek(tp, committed)
        if fresh:
            since = await consumer.offsets_for_times({tp: self._now_ms() - self.keep_ms for tp in fresh})
            for tp in fresh:
                found = since.get(tp)
                if found is None:
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, found.offset)
        ends = await consumer.end_offsets(list(partitions))
        self._catching_up.update({tp: end for tp, end in ends.items() if end > 0})

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        # Whoever takes a partition reads its last `keep_s` again from the committed offsets.
        for tp in partitions:
            self._catching_up.pop(tp, None)
            self._marks.pop(tp, None)
            self.plans.pop(tp.partition, None)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)
