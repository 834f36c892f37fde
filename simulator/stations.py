"""Simulated base stations on the downlink side: `downlink-transmissions` -> "transmit" -> `downlink-reports`.

Backhaul's dispatcher (`workers.downlink_dispatch`) has chosen the station
and rendered the data; the station named in the transmission sends it. A
transmission that arrives after its `transmitBy` time (the device has stopped
waiting for it) or names a station that is not registered is reported as not
transmitted. A transmitted downlink is taken as acknowledged by the device.
A transmission read again (the dispatcher sent it twice around a restart, or
this stage read it again) is transmitted once: the stations remember the last
ones they handled.
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
from schemas.downlinks import decode_transmission
from schemas.topics import DOWNLINK_REPORTS, DOWNLINK_TRANSMISSIONS

log = logging.getLogger(__name__)

TRANSMISSIONS_KEPT = 100_000


class StationsStage(Stage):
    name = "stations"
    group = "backhaul-stations"

    def __init__(self, view: ConfigView) -> None:
        super().__init__()
        self.view = view
        self._t_reports = topic(DOWNLINK_REPORTS)
        self.topics = (topic(DOWNLINK_TRANSMISSIONS),)
        self._handled: OrderedDict[str, None] = OrderedDict()

    def process(self, batch: Batch) -> list[Out]:
        return self.each_record(batch, self._transmit)

    def _transmit(self, tp: TopicPartition, rec: ConsumerRecord, outputs: list[Out]) -> None:
        d = decode_transmission(rec.value)
        if d["id"] in self._handled:
            return
        self._handled[d["id"]] = None
        while len(self._handled) > TRANSMISSIONS_KEPT:
            self._handled.popitem(last=False)
        now_ms = int(time.time() * 1000)
        station = d.get("station")
        reason = None
        if now_ms > d["transmitBy"]:
            reason = f"Network error: the downlink reached its station {(now_ms - d['transmitBy']) / 1000:.1f} s " \
                     "after it was due there (when the device opens its receive window)"
        elif not station or station not in self.view.stations:
            reason = f"Network error: no registered station to transmit from ({station})"
        outputs.append(Out(self._t_reports, d["device"].encode(),
                           encode_downlink_report(report(d, station=station, reason=reason, now_ms=now_ms))))
        log.info("downlink transmitted" if reason is None else "downlink not transmitted",
                 extra={"downlink": d["id"], "station": station, "reason": reason})
