"""The acks stage alone (workers/acks.py), in this process, on the real Kafka.

Its contract: it reads `downlink-reports` and writes, for each, the uplink's ACKNOWLEDGE event to
`device-events` (infoCode 0 and downlinkAck when transmitted, 4 with the stations' reason when not;
the station, the downlink's data and the uplink's time with it;
the id `<device>:ACKNOWLEDGE:<uplink id>`, so a repeated report gives the same event, which the
store keeps once); it commits once the events are written.
"""
from __future__ import annotations

import pytest

from schemas.deliveries import new_delivery
from schemas.device_events import DeviceEvent, decode_device_event
from schemas.downlink_reports import encode_downlink_report, report
from schemas.downlinks import granted
from schemas.messages import Message
from schemas.topics import DEVICE_EVENTS, DOWNLINK_REPORTS
from tests.stages.stage_records import T0, message
from tests.stages.stage_support import (
    Configured,
    commits,
    configured,
    ends,
    publish,
    records_of,
    running,
    wait_all_committed,
)
from workers.acks import AcksStage

pytestmark = pytest.mark.integration

GROUP = "backhaul-acks"
D1, D2 = "5C0001", "5C0002"
LATE = "Network error: too late for the device's receive window"


def stations_report(conf: Configured, uplink: Message, *, station: str | None, reason: str | None,
                    at_ms: int) -> tuple[bytes, bytes]:
    """What the stations publish about the DIRECT downlink granted for `uplink`."""
    delivery = new_delivery(uplink, callback_id=None, kind="DOWNLINK", channel="DIRECT",
                            device_type_id=conf.device_type, message_id=uplink["id"], origin_ms=uplink["time"],
                            created_ms=uplink["time"] + 100, variables={"station": uplink["station"]})
    downlink = granted(delivery, "0011223344556677", created_ms=uplink["time"] + 150,
                       transmit_by_ms=uplink["time"] + 20_000)
    return uplink["device"].encode(), encode_downlink_report(report(downlink, station=station, reason=reason,
                                                                    now_ms=at_ms))


def acknowledge(conf: Configured, uplink: Message, *, code: int, info: str, ack: bool, station: str | None,
                at_ms: int) -> DeviceEvent:
    device = uplink["device"]
    return {"id": f"{device}:ACKNOWLEDGE:{uplink['id']}", "type": "ACKNOWLEDGE", "device": device,
            "deviceTypeId": conf.device_type, "groupId": conf.group, "registrationId": conf.registrations[device],
            "time": at_ms, "messageId": uplink["id"], "infoCode": code, "infoMessage": info, "downlinkAck": ack,
            "downlinkOverusage": False, "station": station, "downlinkData": "0011223344556677",
            "uplinkTime": uplink["time"]}


async def test_reports_become_acknowledge_events_once_per_uplink(isolated):
    async with configured([D1, D2]) as conf:
        m0, m1 = message(conf, D1, 10, time_ms=T0), message(conf, D1, 11, time_ms=T0 + 60_000, ack=True)
        m2 = message(conf, D2, 3, ack=True)
        sent = stations_report(conf, m1, station="5A02", reason=None, at_ms=T0 + 61_000)
        reports = [sent, stations_report(conf, m2, station=None, reason=LATE, at_ms=T0 + 21_000),
                   sent,                                                                 # the same report again
                   stations_report(conf, m0, station="5A01", reason=None, at_ms=T0 + 1_000)]  # an older uplink
        await publish(DOWNLINK_REPORTS, reports)
        assert await commits(GROUP, DOWNLINK_REPORTS) == {}
        async with running(AcksStage()):
            await wait_all_committed(GROUP, [DOWNLINK_REPORTS])
        assert await commits(GROUP, DOWNLINK_REPORTS) == {p: e for p, e in (await ends(DOWNLINK_REPORTS)).items() if e}

        events = await records_of(DEVICE_EVENTS, decode_device_event)
        acked = acknowledge(conf, m1, code=0, info="Acked: the station transmitted the downlink", ack=True,
                            station="5A02", at_ms=T0 + 61_000)
        expected = [acked, acked,
                    acknowledge(conf, m0, code=0, info="Acked: the station transmitted the downlink", ack=True,
                                station="5A01", at_ms=T0 + 1_000),
                    acknowledge(conf, m2, code=4, info=LATE, ack=False, station=None, at_ms=T0 + 21_000)]
        assert sorted(events, key=lambda e: (e["device"], e["time"])) == \
            sorted(expected, key=lambda e: (e["device"], e["time"]))
        of_d1 = [e["messageId"] for e in events if e["device"] == D1]
        assert of_d1 == [m1["id"], m1["id"], m0["id"]], "in the order the reports came"
