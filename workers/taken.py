"""The deliveries this worker has already taken from Kafka, so one read again is not sent twice.

A `deliveries` record is read again when its offset was not committed in time:
the group rebalanced (after a broker outage every member's session has
expired), or a stage upstream published it twice (a send tried again after a
failure it could not tell from a loss). The copy has the same id (the
router's `<record id>/<callback id>`), so the worker remembers the last
`capacity` ids it took: a copy of one still in flight is held until the first
is settled, a copy of one already settled is released at once. Replays have
ids of their own (`#r<n>`) and are sent. The memory goes with the process: a
worker restarted after a crash may send a delivery again, with the same
`webhook-id` (delivery stays at least once).
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict

_SETTLED = asyncio.Event()
_SETTLED.set()


class TakenDeliveries:
    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, asyncio.Event | None] = OrderedDict()  # None: settled

    def take(self, delivery_id: str) -> asyncio.Event | None:
        """None if `delivery_id` is new (taken now: the caller handles it); else an event that is
        set once its first copy is settled (already set if it is)."""
        if delivery_id in self._ids:
            return self._ids[delivery_id] or _SETTLED
        self._ids[delivery_id] = asyncio.Event()
        while len(self._ids) > self.capacity:
            _, oldest = self._ids.popitem(last=False)
            if oldest is not None:
                oldest.set()  # forgotten while in flight: let its copies go rather than hold them forever
        return None

    def settled(self, delivery_id: str) -> None:
        """The delivery taken as `delivery_id` is settled (sent and recorded, parked or set aside)."""
        event = self._ids.get(delivery_id)
        if event is not None:
            event.set()
            self._ids[delivery_id] = None
