"""The `device-events` record: something that happened to a device, one builder per type.

Every event has the same head, then the fields of its type:

    {"id": "<device>:<type>:<key>", "type": "ERROR", "device": "00AB12CD", "deviceTypeId": "...",
     "groupId": "...", "registrationId": 7, "time": <ms>, ...}

| type | published by | its fields | key of its id |
|---|---|---|---|
| SEQUENCE_BREAK | ingest | deviceLastSeqnumber, deviceMessageSeqnumber, missing | the message id |
| OUT_OF_SEQUENCE | ingest | deviceLastSeqnumber, deviceMessageSeqnumber | `<seqNumber>:<frame time>` |
| ERROR (keep-alive missed) | ingest | info, severity "ERROR", lastSeen | the deadline, ms (truncated) |
| RESTORED | ingest | info, severity "INFO", lastErrorTime | the message id |
| STATUS, REPEATER, KEEPALIVE (service frames) | ingest | seqNumber, station, rssi, snr, avgSnr, frameTime, and the frame's decoded fields (batt, temp, whitelistDevices, ...) | the message id |
| ACKNOWLEDGE | router, delivery, acks | messageId, infoCode, infoMessage, downlinkAck, downlinkOverusage, uplinkTime (station, downlinkData: from a station's report) | the uplink's id |

Ids are stable: an event decided again after a crash is the same record.
Read by the router (callbacks of each type) and the store.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, NamedTuple, NotRequired, TypedDict, cast

import orjson

from schemas.fields import Fields, NoneType, checked


class DeviceEvent(TypedDict):
    id: str
    type: str
    device: str
    time: int
    deviceTypeId: NotRequired[str | None]
    groupId: NotRequired[str | None]
    registrationId: NotRequired[int | None]
    # SEQUENCE_BREAK, OUT_OF_SEQUENCE
    deviceLastSeqnumber: NotRequired[int]
    deviceMessageSeqnumber: NotRequired[int]
    missing: NotRequired[int]
    # ERROR, RESTORED
    info: NotRequired[str]
    severity: NotRequired[str]
    lastSeen: NotRequired[int]
    lastErrorTime: NotRequired[int]
    # service frames (their decoded fields besides these)
    seqNumber: NotRequired[int]
    rssi: NotRequired[float]
    snr: NotRequired[float]
    avgSnr: NotRequired[float | str]
    frameTime: NotRequired[int]
    # ACKNOWLEDGE (and service frames: station)
    station: NotRequired[str | None]
    messageId: NotRequired[str]
    infoCode: NotRequired[int]
    infoMessage: NotRequired[str]
    downlinkAck: NotRequired[bool]
    downlinkOverusage: NotRequired[bool]
    downlinkData: NotRequired[str]
    uplinkTime: NotRequired[int]


REQUIRED: Fields = (("id", (str,)), ("type", (str,)), ("device", (str,)), ("time", (int,)))
OPTIONAL: Fields = (("deviceTypeId", (str, NoneType)), ("groupId", (str, NoneType)),
                    ("registrationId", (int, NoneType)))
# What the consumers read of each type without a default.
REQUIRED_BY_TYPE: dict[str, Fields] = {
    "OUT_OF_SEQUENCE": (("deviceMessageSeqnumber", (int,)),),
    "ERROR": (("info", (str,)), ("severity", (str,))),
    "RESTORED": (("info", (str,)), ("severity", (str,)), ("lastErrorTime", (int,))),
}
OPTIONAL_BY_TYPE: dict[str, Fields] = {
    "STATUS": (("frameTime", (int,)), ("station", (str, NoneType))),
    "REPEATER": (("frameTime", (int,)), ("station", (str, NoneType))),
}


class Subject(NamedTuple):
    """Whom an event is about: the device, its type, its group and its registration."""

    device: str
    device_type_id: str | None
    group_id: str | None
    registration_id: int | None


def _event(kind: str, subject: Subject, key: str, time_ms: int) -> DeviceEvent:
    return {"id": f"{subject.device}:{kind}:{key}", "type": kind, "device": subject.device,
            "deviceTypeId": subject.device_type_id, "groupId": subject.group_id,
            "registrationId": subject.registration_id, "time": time_ms}


def sequence_break(subject: Subject, time_ms: int, *, message_id: str, last_seq: int, seq: int,
                   missing: int) -> DeviceEvent:
    """Message `message_id` (seqNumber `seq`) came `missing` messages after the last one (`last_seq`)."""
    event = _event("SEQUENCE_BREAK", subject, message_id, time_ms)
    event["deviceLastSeqnumber"], event["deviceMessageSeqnumber"], event["missing"] = last_seq, seq, missing
    return event


def out_of_sequence(subject: Subject, time_ms: int, *, seq: int, frame_time: int, last_seq: int) -> DeviceEvent:
    """A frame whose seqNumber `seq` is not newer than the last accepted one (`last_seq`) was trashed."""
    event = _event("OUT_OF_SEQUENCE", subject, f"{seq}:{frame_time}", time_ms)
    event["deviceLastSeqnumber"], event["deviceMessageSeqnumber"] = last_seq, seq
    return event


def keep_alive_error(subject: Subject, time_ms: int, *, deadline_key_ms: int, info: str,
                     last_seen_ms: int) -> DeviceEvent:
    """The device missed its keep-alive deadline. `deadline_key_ms` (the deadline, truncated to the
    millisecond, as earlier versions keyed it) keeps the id of a breach raised again."""
    event = _event("ERROR", subject, str(deadline_key_ms), time_ms)
    event["info"], event["severity"], event["lastSeen"] = info, "ERROR", last_seen_ms
    return event


def restored(subject: Subject, time_ms: int, *, message_id: str, info: str, last_error_time_ms: int) -> DeviceEvent:
    """The device, in ERROR, was heard again (message `message_id`)."""
    event = _event("RESTORED", subject, message_id, time_ms)
    event["info"], event["lastErrorTime"], event["severity"] = info, last_error_time_ms, "INFO"
    return event


def service_frame(kind: str, subject: Subject, time_ms: int, *, message_id: str, seq: int, station: str,
                  rssi: float, snr: float, avg_snr: float | str, frame_time: int,
                  decoded: dict[str, Any]) -> DeviceEvent:
    """A service (out-of-band) frame of type `kind` (STATUS, REPEATER, KEEPALIVE) and its decoded fields
    (`ingest.oob`: batt, temp, the repeater's counters)."""
    event = _event(kind, subject, message_id, time_ms)
    event["seqNumber"], event["station"], event["rssi"], event["snr"] = seq, station, rssi, snr
    event["avgSnr"], event["frameTime"] = avg_snr, frame_time
    # The decoded fields vary with the frame's type: not named in DeviceEvent.
    cast(dict[str, Any], event).update(decoded)
    return event


class Absent(enum.Enum):
    """A field left out, told from one given as None."""

    ABSENT = 0


NOT_REPORTED = Absent.ABSENT


def acknowledge(subject: Subject, time_ms: int, *, message_id: str, info_code: int, info_message: str,
                downlink_ack: bool, downlink_overusage: bool,
                station: str | None | Absent = NOT_REPORTED, data: str | None = None,
                uplink_ms: int | None = None) -> DeviceEvent:
    """The outcome of the downlink uplink `message_id` (sent at `uplink_ms`) asked for (one per uplink:
    a stable id).

    `station`: for the ACKNOWLEDGE of a station's report, the station that transmitted (or None);
    an event decided without a report has no `station` field. `data`: the downlink, when there was one."""
    event = _event("ACKNOWLEDGE", subject, message_id, time_ms)
    event["messageId"], event["infoCode"], event["infoMessage"] = message_id, info_code, info_message
    event["downlinkAck"], event["downlinkOverusage"] = downlink_ack, downlink_overusage
    if station is not NOT_REPORTED:
        event["station"] = station
    if data is not None:
        event["downlinkData"] = data
    if uplink_ms is not None:
        event["uplinkTime"] = uplink_ms
    return event


# The record as JSON; orjson's own function, so that the hot path adds no Python call.
encode_device_event: Callable[[DeviceEvent], bytes] = orjson.dumps


def decode_device_event(raw: bytes) -> DeviceEvent:
    """The event in a record's value; raises naming the field it cannot use (see `schemas.fields`)."""
    event = checked(orjson.loads(raw), "device event", REQUIRED, OPTIONAL)
    kind = event["type"]
    if kind in REQUIRED_BY_TYPE or kind in OPTIONAL_BY_TYPE:
        checked(event, f"device event {kind}", REQUIRED_BY_TYPE.get(kind, ()), OPTIONAL_BY_TYPE.get(kind, ()))
    return cast(DeviceEvent, event)
