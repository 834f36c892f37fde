"""Which offsets a worker with many deliveries in flight may commit."""
from __future__ import annotations

from aiokafka import TopicPartition


class OffsetTracker:
    """Per partition, the offset below which every record is finished.

    Records finish out of order (a fast endpoint overtakes a slow one); the
    committable offset of a partition is the oldest record still in flight,
    or one past the newest record seen when none is.
    """

    def __init__(self) -> None:
        self._inflight: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, offset: int) -> None:
        self._inflight.setdefault(tp, set()).add(offset)
        if offset + 1 > self._next.get(tp, 0):
            self._next[tp] = offset + 1

    def done(self, tp: TopicPartition, offset: int) -> None:
        pending = self._inflight.get(tp)
        if pending is not None:
            pending.discard(offset)

    def in_flight(self, tps: set[TopicPartition] | None = None) -> int:
        return sum(len(v) for tp, v in self._inflight.items() if tps is None or tp in tps)

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets that moved since the last call."""
        out = {}
        for tp, nxt in self._next.items():
            pending = self._inflight.get(tp)
            offset = min(pending) if pending else nxt
            if offset > self._committed.get(tp, -1):
                out[tp] = offset
        return out

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._inflight.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
