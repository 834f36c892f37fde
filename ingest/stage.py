"""The ingest stage: frames -> messages, DATA_ADVANCED, device events, rejections.

Device state lives in memory and is made durable in the compacted
`ingest.state` changelog, co-partitioned with `frames` (partition p of the
changelog holds the devices of partition p of frames). After each batch the
stage publishes its outputs, waits for Kafka's acknowledgement, then writes
the state of every device the batch touched, and only then commits the
frames' offsets. On assignment the state of each new partition is read back
from the changelog, and every window and keep-alive deadline is indexed again.
"""
from __future__ import annotations

import logging
import time

from aiokafka import TopicPartition

from backhaul import metrics
from backhaul.configview import ConfigView
from backhaul.kafka import Out, make_consumer, send_all
from backhaul.settings import settings
from backhaul.stage import Batch, Stage
from backhaul.topics import topic
from ingest.engine import DeviceState, IngestEngine, Outputs
from schemas.advanced_messages import encode_advanced_message
from schemas.device_events import encode_device_event
from schemas.device_state import DeviceStateRecord, decode_device_state, encode_device_state
from schemas.frames import FrameError, decode_frame, rejection
from schemas.messages import encode_message
from schemas.topics import DEVICE_EVENTS, FRAMES, FRAMES_REJECTED, INGEST_STATE, MESSAGES, MESSAGES_ADVANCED

log = logging.getLogger(__name__)

GAUGES_EVERY_S = 1.0
GAUGES_CPU_SHARE = 0.01  # the gauges walk every device's state: at most 1 % of the worker's time


class IngestStage(Stage):
    name = "ingest"
    group = "backhaul-ingest"

    def __init__(self, view: ConfigView) -> None:
        super().__init__()
        s = settings()
        self.view = view
        self._t_frames = topic(FRAMES)
        self.topics = (self._t_frames,)
        self._next_offset: dict[int, int] = {}
        self._appended: dict[int, float] = {}
        self.tick_interval_s = s.window_check_interval_s
        self.append_visible_s = s.append_visible_s
        self.max_records = s.ingest_batch_max
        self.max_frame_bytes = s.max_frame_bytes
        self.engine = IngestEngine(view, window_s=s.advanced_window_s, daily_quota=s.daily_uplink_quota)
        self._dirty: set[str] = set()
        self._t_messages = topic(MESSAGES)
        self._t_advanced = topic(MESSAGES_ADVANCED)
        self._t_events = topic(DEVICE_EVENTS)
        self._t_rejected = topic(FRAMES_REJECTED)
        self._t_state = topic(INGEST_STATE)
        self._last_counts = self.engine.counters.__dict__.copy()
        self._gauges_due = 0.0

    def process(self, batch: Batch) -> list[Out]:
        out = Outputs()
        rejected: list[Out] = []
        engine = self.engine
        max_bytes = self.max_frame_bytes
        n = 0
        for tp, records in batch.items():
            self._next_offset[tp.partition] = records[-1].offset + 1
            self._appended[tp.partition] = records[-1].timestamp / 1000
            for rec in records:
                n += 1
                try:
                    frame = decode_frame(rec.value, max_bytes, rec.key)
                except FrameError as exc:
                    rejected.append(self._reject(rec, exc.code, str(exc)))
                    continue
                appended = rec.timestamp / 1000
                try:
                    # Outside the frame's mark: the windows it finds due stay closed even if the frame fails.
                    engine.close_due(frame.device, appended, out)
                except Exception as exc:
                    self.dead_letter(rec, exc)
                    continue
                mark = out.mark()
                try:
                    engine.handle(frame, tp.partition, out, appended)
                except Exception as exc:
                    # A valid frame the engine fails on (corrupt configuration, a bug): set it aside.
                    out.truncate(mark)
                    self.dead_letter(rec, exc)
                    continue
                if len(out.rejected) > mark[-1]:
                    code, message = out.rejected.pop()
                    rejected.append(self._reject(rec, code, message))
        metrics.FRAMES_IN.inc(n)
        metrics.INGEST_BATCH.observe(n)
        return self._outputs(out) + rejected

    async def before_tick(self) -> None:
        assert self.consumer is not None  # set in run()
        for tp in self.consumer.assignment():
            if tp.partition not in self._next_offset:
                self._next_offset[tp.partition] = await self.consumer.position(tp)

    def watermark(self, partition: int) -> float:
        """Broker time before which every frame of `partition` has been processed.

        Behind the end of the partition: the append time of the last frame read. Caught up
        with the end the broker reported in its last fetch answer: the time that answer
        came, less `append_visible_s` (a frame appended just before may not have been
        readable yet: clock skew, replication)."""
        assert self.consumer is not None  # set in run()
        tp = TopicPartition(self._t_frames, partition)
        highwater = self.consumer.highwater(tp)
        polled = self.consumer.last_poll_timestamp(tp)
        if highwater is not None and polled and self._next_offset.get(partition, 0) >= highwater:
            return max(self._appended.get(partition, 0.0), polled / 1000 - self.append_visible_s)
        return self._appended.get(partition, 0.0)

    def tick(self) -> list[Out]:
        out = self.engine.tick(time.time(), self.watermark)
        self._update_gauges()
        return self._outputs(out)

    def _outputs(self, out: Outputs) -> list[Out]:
        records = []
        for m in out.messages:
            records.append(Out(self._t_messages, m["device"].encode(), encode_message(m)))
        now = time.time()
        for a in out.advanced:
            records.append(Out(self._t_advanced, a["device"].encode(), encode_advanced_message(a)))
            metrics.ADVANCED_LATENESS.observe(max(0.0, now - a["deadline"] / 1000))
        for e in out.events:
            records.append(Out(self._t_events, e["device"].encode(), encode_device_event(e)))
            metrics.DEVICE_EVENTS.labels(e["type"]).inc()
        self._dirty |= out.touched
        return records

    def _reject(self, rec, code: str, message: str) -> Out:
        metrics.FRAMES_REJECTED.labels(code).inc()
        key, value = rejection(code, message, key=rec.key, value=rec.value, topic=rec.topic,
                               partition=rec.partition, offset=rec.offset, time_ms=int(time.time() * 1000))
        return Out(self._t_rejected, key, value)

    async def persist(self) -> None:
        if not self._dirty:
            return
        states = self.engine.states
        records = []
        for device in self._dirty:
            st = states.get(device)
            if st is not None:
                records.append(Out(self._t_state, device.encode(), encode_device_state(st.to_json()), st.partition))
        await send_all(self.producer, records)
        self._dirty.clear()  # only now: a failed send is tried again with the same devices

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        if not numbers:
            return
        started = time.monotonic()
        restored = await read_changelog(self._t_state, numbers)
        for partition, value in restored.values():
            self.engine.restore(DeviceState.from_json(value, partition))
        metrics.STATE_RESTORED.inc(len(restored))
        self._gauges_due = 0.0  # report the restored windows at once
        self._update_gauges()
        log.info("ingest state restored", extra={"partitions": sorted(numbers), "devices": len(restored),
                                                  "windows": self.engine.open_windows,
                                                  "seconds": round(time.monotonic() - started, 3)})

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        self.engine.forget_partitions(numbers)
        for p in numbers:
            self._next_offset.pop(p, None)
            self._appended.pop(p, None)

    def _update_gauges(self) -> None:
        engine = self.engine
        c = engine.counters
        now = time.monotonic()
        if now >= self._gauges_due:
            # Both gauges walk every device's state: once a second at most, and less often when the walk
            # is long (a million devices: about 0.1 s), so that it never takes more than 1 % of the time.
            metrics.WINDOWS_OPEN.set(engine.open_windows)
            metrics.KEEPALIVE_DEADLINES.set(engine.keepalive_count)
            walked = time.monotonic() - now
            self._gauges_due = now + max(GAUGES_EVERY_S, walked / GAUGES_CPU_SHARE)
        last = self._last_counts
        metrics.MESSAGES.labels("data").inc(c.messages - last["messages"])
        metrics.MESSAGES.labels("oob").inc(c.oob - last["oob"])
        metrics.DUPLICATE_FRAMES.labels("station").inc(c.duplicates - last["duplicates"])
        metrics.DUPLICATE_FRAMES.labels("repetition").inc(c.repetitions - last["repetitions"])
        metrics.LATE_FRAMES.inc(c.late - last["late"])
        metrics.TRASHED_FRAMES.inc(c.trashed - last["trashed"])
        metrics.OVER_QUOTA.inc(c.over_quota - last["over_quota"])
        metrics.ADVANCED_EMITTED.inc(c.advanced - last["advanced"])
        for lateness in c.late_lateness:
            metrics.LATE_FRAME_LATENESS.observe(lateness)
        c.late_lateness.clear()
        self._last_counts = {k: v for k, v in c.__dict__.items() if k != "late_lateness"}


async def read_changelog(name: str, partitions: set[int]) -> dict[str, tuple[int, DeviceStateRecord]]:
    """The latest device state of every key in some partitions of the compacted `ingest.state`."""
    consumer = make_consumer(group=None)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        # Only the latest value of a key is decoded: a changelog not compacted yet holds several per device.
        latest: dict[bytes, tuple[int, bytes | None]] = {}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=20000)
            for tp, records in batch.items():
                partition = tp.partition
                for rec in records:
                    latest[rec.key] = (partition, rec.value or None)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return {k.decode(): (p, decode_device_state(v)) for k, (p, v) in latest.items() if v is not None}
    finally:
        await consumer.stop()
