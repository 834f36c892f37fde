"""The `downlink-reports` record: what the stations did with a downlink.

The stations publish one per downlink transmission (`schemas.downlinks`), keyed by device id:

    {"id": "<uplink id>", "device": "00AB12CD", "messageId": "<uplink id>", "station": "1A2B" | null,
     "data": "0011223344556677", "transmitted": true, "reason": null | "Network error: ...",
     "time": <ms>, "uplinkTime": <ms>, "deviceTypeId": "...", "groupId": "...", "registrationId": 7}

`reason` says why a downlink was not transmitted (too late for the device's
receive window, no registered station). Read by the acks stage, which turns
it into the uplink's ACKNOWLEDGE event.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NotRequired, TypedDict, cast

import orjson

from schemas.downlinks import Downlink
from schemas.fields import Fields, NoneType, checked


class DownlinkReport(TypedDict):
    id: str
    device: str
    transmitted: bool
    time: int
    messageId: NotRequired[str | None]
    station: NotRequired[str | None]
    data: NotRequired[str]
    reason: NotRequired[str | None]
    uplinkTime: NotRequired[int | None]
    deviceTypeId: NotRequired[str | None]
    groupId: NotRequired[str | None]
    registrationId: NotRequired[int | None]


REQUIRED: Fields = (("id", (str,)), ("device", (str,)), ("transmitted", (bool,)), ("time", (int,)))
OPTIONAL: Fields = (("reason", (str, NoneType)), ("deviceTypeId", (str, NoneType)),
                    ("registrationId", (int, NoneType)), ("data", (str,)), ("uplinkTime", (int, NoneType)))


def report(downlink: Downlink, *, station: str | None, reason: str | None, now_ms: int) -> DownlinkReport:
    """The stations' report on the transmission `downlink`: transmitted from `station`, or not, for `reason`."""
    return {"id": downlink["id"], "device": downlink["device"], "messageId": downlink.get("messageId"),
            "station": station, "data": downlink["data"], "transmitted": reason is None, "reason": reason,
            "time": now_ms, "uplinkTime": downlink.get("uplinkTime"), "deviceTypeId": downlink.get("deviceTypeId"),
            "groupId": downlink.get("groupId"), "registrationId": downlink.get("registrationId")}


# The record as JSON; orjson's own function, so that the hot path adds no Python call.
encode_downlink_report: Callable[[DownlinkReport], bytes] = orjson.dumps


def decode_downlink_report(raw: bytes) -> DownlinkReport:
    """The report in a record's value; raises naming the field it cannot use (see `schemas.fields`)."""
    return cast(DownlinkReport, checked(orjson.loads(raw), "downlink report", REQUIRED, OPTIONAL))
