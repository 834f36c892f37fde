"""Which station transmits a granted downlink, and when it leaves for it: the dispatcher's decisions,
without Kafka (`workers.downlink_dispatch` runs them on the topics).

A grant (`schemas.downlinks`) is held until its uplink's downlink must leave
for a station (`DownlinkTiming.leaves_at`: `lead_s` before the device opens
its receive window, counted from the uplink's own time). It then goes from the
station that heard the uplink best (highest RSSI; the earliest of equals)
among the receptions Backhaul received by then: a better copy that came
slower than the first one is taken, one received after the downlink left is
not. A DIRECT grant's template is rendered for that station (`{tapId}`,
`{rssi}`) and the uplink's time. With no reception known (kept `keep_ms`),
the grant's own station, the uplink's first reception, transmits.

A reception's time is when Backhaul published it (the `messages` record's
timestamp), so a decision taken again from the topics (after a restart) is
the decision taken live. Transmissions already made (read back from their own
topic) are never made again.
"""
from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass

from callback_language.downlink import DownlinkTiming, render_direct
from schemas.downlinks import Downlink
from schemas.messages import Message


@dataclass(frozen=True)
class Reception:
    station: str
    rssi: float
    received_ms: int


@dataclass(frozen=True)
class Departure:
    """A grant leaving now: from `station` (None: none known), heard at `rssi`, with its final data
    (None: its template could not be rendered, for `problem`)."""

    grant: Downlink
    station: str | None
    rssi: float | None
    data: str | None
    problem: str | None = None


class DownlinkPlan:
    """The receptions of uplinks asking for a downlink, the grants waiting to leave, and the
    transmissions made (times in epoch ms)."""

    def __init__(self, timing: DownlinkTiming, keep_ms: int) -> None:
        self.timing = timing
        self.keep_ms = keep_ms
        self._receptions: OrderedDict[str, list[Reception]] = OrderedDict()  # message id -> receptions
        self._held: dict[str, Downlink] = {}
        self._leaving: list[tuple[int, str]] = []  # (leaves at, grant id), a heap
        self._sent: OrderedDict[str, int] = OrderedDict()  # grant id -> when it left

    def heard(self, message: Message, received_ms: int) -> None:
        """A reception of an uplink (first or duplicate); only those asking for a downlink are kept."""
        if not message.get("ack"):
            return
        message_id = message.get("messageId") or message["id"]
        self._receptions.setdefault(message_id, []).append(
            Reception(message["station"], float(message["rssi"]), received_ms))

    def granted(self, grant: Downlink) -> None:
        """A grant to send when its time comes (unless it was sent already)."""
        if grant["id"] in self._sent or grant["id"] in self._held:
            return
        self._held[grant["id"]] = grant
        heapq.heappush(self._leaving, (self.leaves_at(grant), grant["id"]))

    def sent(self, transmission: Downlink) -> None:
        """A transmission made (read back from its topic): its grant is not sent again."""
        self._sent[transmission["id"]] = transmission.get("leftAt", 0)
        self._held.pop(transmission["id"], None)

    def leaves_at(self, grant: Downlink) -> int:
        """When the grant leaves for its station."""
        uplink_ms = grant.get("uplinkTime")
        if uplink_ms is None:  # a grant written before grants carried their uplink's time
            return grant["transmitBy"] - round(self.timing.lead_s * 1000)
        return self.timing.leaves_at(uplink_ms)

    def held(self) -> int:
        return len(self._held)

    def due(self, now_ms: int) -> list[Departure]:
        """The grants whose time to leave has come, each from its station, oldest first."""
        out = []
        while self._leaving and self._leaving[0][0] <= now_ms:
            leaves_at, grant_id = heapq.heappop(self._leaving)
            grant = self._held.pop(grant_id, None)
            if grant is None:  # sent meanwhile
                continue
            out.append(self._departure(grant, leaves_at))
            self._sent[grant_id] = now_ms
        return out

    def _departure(self, grant: Downlink, leaves_at: int) -> Departure:
        station, rssi = grant.get("station"), grant.get("rssi")
        heard = [r for r in self._receptions.get(grant.get("messageId") or grant["id"], ())
                 if r.received_ms <= leaves_at]
        if heard:
            best = max(heard, key=lambda r: (r.rssi, -r.received_ms))
            station, rssi = best.station, best.rssi
        data = grant.get("data")
        if data is not None:
            return Departure(grant, station, rssi, data)
        try:
            data = render_direct(grant.get("template") or "", tap_id=station or "", rssi=rssi if rssi is not None
                                 else float("nan"), time_s=int(grant.get("uplinkTime") or grant["transmitBy"]) // 1000)
        except ValueError as exc:
            return Departure(grant, station, rssi, None, str(exc))
        return Departure(grant, station, rssi, data)

    def forget(self, before_ms: int) -> None:
        """Drop receptions and sent grants older than `before_ms` (received, left)."""
        while self._receptions:
            message_id, receptions = next(iter(self._receptions.items()))
            if receptions[-1].received_ms >= before_ms:
                break
            self._receptions.popitem(last=False)
        while self._sent and next(iter(self._sent.values())) < before_ms:
            self._sent.popitem(last=False)
