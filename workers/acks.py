"""The acks stage: stations' downlink reports -> ACKNOWLEDGE device events.

A transmitted downlink gives infoCode 0 (ACKED, downlinkAck true); one the
stations could not transmit gives infoCode 4 (NETWORK_ERROR) with their
reason. Both carry the station and the downlink's data (what the API shows
as the message's downlinkAnswerStatus). The router then delivers the event to
the ACKNOWLEDGE callbacks.
"""
from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from backhaul import metrics
from backhaul.kafka import Out
from backhaul.stage import Batch, Stage
from backhaul.topics import topic
from callback_language.downlink import InfoCode, ack_event
from schemas.device_events import encode_device_event
from schemas.downlink_reports import decode_downlink_report
from schemas.topics import DEVICE_EVENTS, DOWNLINK_REPORTS


class AcksStage(Stage):
    name = "acks"
    group = "backhaul-acks"

    def __init__(self) -> None:
        super().__init__()
        self.topics = (topic(DOWNLINK_REPORTS),)
        self._t_events = topic(DEVICE_EVENTS)

    def process(self, batch: Batch) -> list[Out]:
        return self.each_record(batch, self._acknowledge)

    def _acknowledge(self, tp: TopicPartition, rec: ConsumerRecord, outputs: list[Out]) -> None:
        report = decode_downlink_report(rec.value)
        code = InfoCode.ACKED if report["transmitted"] else InfoCode.NETWORK_ERROR
        event = ack_event(report["device"], report["id"], code, reason=report.get("reason"),
                          device_type_id=report.get("deviceTypeId"), group_id=report.get("groupId"),
                          registration_id=report.get("registrationId"), now_ms=report["time"],
                          downlink_ack=bool(report["transmitted"]), station=report.get("station"),
                          data=report.get("data"), uplink_ms=report.get("uplinkTime"))
        outputs.append(Out(self._t_events, report["device"].encode(), encode_device_event(event)))
        metrics.DOWNLINKS.labels(str(int(code))).inc()
