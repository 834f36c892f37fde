"""Simulated base stations on the downlink side: `downlinks` -> "transmit" -> `downlink-reports`.

The stations also read `messages` (first and duplicate receptions) to know
which of them heard each uplink, and the best one (highest RSSI) transmits
the downlink; the station named in the downlink record is the fallback. A
downlink that arrives after its `transmitBy` time (the device has stopped
listening) or names a station that is not registered is reported as not
transmitted. A transmitted downlink is taken as acknowledged by the device.

One stations process serves the whole simulated network: receptions and
downlinks of a device must reach the same process.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from backhaul.configview import ConfigView
from backhaul.kafka import Out
from backhaul.stage import Batch, Stage
from backhaul.topics import topic
from schemas.downlink_reports import encode_downlink_report, report
from schemas.downlinks import decode_downlink
from schemas.messages import decode_message
from schemas.topics import DOWNLINK_REPORTS, DOWNLINKS, MESSAGES

log = logging.getLogger(__name__)

RECEPTIONS_KEPT = 200_000


class StationsStage(Stage):
    name = "stations"
    group = "backhaul-stations"

    def __init__(self, view: ConfigView) -> None:
        super().__init__()
        self.view = view
        self._t_messages = topic(MESSAGES)
        self._t_downlinks = topic(DOWNLINKS)
        self._t_reports = topic(DOWNLINK_REPORTS)
        self.topics = (self._t_messages, self._t_downlinks)
        self._best: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def process(self, batch: Batch) -> list[Out]:
        # Every reception of the batch first, so a downlink finds the uplink heard in the same batch.
        heard = {tp: records for tp, records in batch.items() if tp.topic == self._t_messages}
        self.each_record(heard, self._heard)
        return self.each_record({tp: r for tp, r in batch.items() if tp not in heard}, self._transmit)

    def _heard(self, tp: TopicPartition, rec: ConsumerRecord, outputs: list[Out]) -> None:
        m = decode_message(rec.value)
        message_id = m.get("messageId") or m["id"]
        best = self._best.get(message_id)
        if best is None or m["rssi"] > best[0]:
            self._best[message_id] = (m["rssi"], m["station"])
            self._best.move_to_end(message_id)
            while len(self._best) > RECEPTIONS_KEPT:
                self._best.popitem(last=False)

    def _transmit(self, tp: TopicPartition, rec: ConsumerRecord, outputs: list[Out]) -> None:
        d = decode_downlink(rec.value)
        now_ms = int(time.time() * 1000)
        heard = self._best.get(d.get("messageId") or "")
        station = heard[1] if heard else d.get("station")
        reason = None
        if now_ms > d["transmitBy"]:
            reason = f"Network error: the downlink reached the network {(now_ms - d['transmitBy']) / 1000:.1f} s " \
                     "after the device stopped listening"
        elif not station or station not in self.view.stations:
            reason = f"Network error: no registered station to transmit from ({station})"
        outputs.append(Out(self._t_reports, d["device"].encode(),
                           encode_downlink_report(report(d, station=station, reason=reason, now_ms=now_ms))))
        log.info("downlink transmitted" if reason is None else "downlink not transmitted",
                 extra={"downlink": d["id"], "station": station, "reason": reason})
