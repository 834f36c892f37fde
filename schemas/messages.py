"""The `messages` record: a device's message, at its first reception and at each other station's.

Ingest publishes one record when a message's first frame arrives (the first
reception) and, for a message that asks for a downlink (`ack`), one for each
further station that hears it within its window (a duplicate reception), keyed
by device id:

    {"id": "00AB12CD-123-1764165600000", "device": "00AB12CD", "deviceTypeId": "...", "groupId": "...",
     "registrationId": 7, "seqNumber": 123, "time": 1764165600000, "data": "0102ff", "station": "1A2B",
     "rssi": -121.5, "snr": 12.3, "freq": 868130000, "rep": 1, "ack": false, "duplicate": false,
     "avgSnr": 11.2 | "N/A", "overQuota": false, "ingestedAt": <ms>, "lat": 44, "lng": 1}

`lat`/`lng` (the receiving station's position, rounded) only when the station
has one. A duplicate reception has `"duplicate": true`, its own id
`<message id>:<station>`, the message's id as `messageId`, and no `avgSnr`,
`overQuota`, `ingestedAt`, `lat`, `lng`. Read by the router (DATA callbacks;
duplicates are not routed), the store (duplicates skipped: DATA_ADVANCED has
every station) and the downlink dispatcher (which station heard a message that
asks for a downlink best).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NotRequired, TypedDict, cast

import orjson

from schemas.fields import NUMBER, Fields, NoneType, checked
from schemas.frames import Frame


class Message(TypedDict):
    id: str
    device: str
    seqNumber: int
    time: int                   # epoch ms at the station (the first frame's)
    data: str                   # lower-case hex, 0..12 bytes
    station: str
    rssi: float
    snr: float
    freq: int
    messageId: NotRequired[str]  # duplicate receptions: the message's id
    deviceTypeId: NotRequired[str | None]
    groupId: NotRequired[str | None]
    registrationId: NotRequired[int | None]
    rep: NotRequired[int]
    ack: NotRequired[bool]
    duplicate: NotRequired[bool]
    avgSnr: NotRequired[float | str]
    overQuota: NotRequired[bool]
    ingestedAt: NotRequired[int]
    lat: NotRequired[int]
    lng: NotRequired[int]


REQUIRED: Fields = (("id", (str,)), ("device", (str,)), ("seqNumber", (int,)), ("time", (int,)),
                    ("data", (str,)), ("station", (str,)), ("rssi", NUMBER), ("snr", NUMBER), ("freq", (int,)))
OPTIONAL: Fields = (("messageId", (str,)), ("deviceTypeId", (str, NoneType)), ("groupId", (str, NoneType)),
                    ("registrationId", (int, NoneType)), ("ack", (bool,)), ("duplicate", (bool,)),
                    ("overQuota", (bool,)))


def first_reception(message_id: str, frame: Frame, *, device_type_id: str | None, group_id: str | None,
                    registration_id: int | None, avg_snr: float | str, over_quota: bool, ingested_at_ms: int,
                    station_position: tuple[float, float] | None = None) -> Message:
    """The record of a new message, from its first frame; `station_position` (lat, lng) is rounded."""
    message: Message = {
        "id": message_id, "device": frame.device, "deviceTypeId": device_type_id, "groupId": group_id,
        "registrationId": registration_id, "seqNumber": frame.seqNumber, "time": frame.time,
        "data": frame.data, "station": frame.station, "rssi": frame.rssi, "snr": frame.snr,
        "freq": frame.freq, "rep": frame.rep, "ack": frame.ack, "duplicate": False,
        "avgSnr": avg_snr, "overQuota": over_quota, "ingestedAt": ingested_at_ms,
    }
    if station_position is not None:
        message["lat"], message["lng"] = round(station_position[0]), round(station_position[1])
    return message


def duplicate_reception(message_id: str, frame: Frame, *, device_type_id: str | None, group_id: str | None,
                        registration_id: int | None) -> Message:
    """The record of another station's reception of message `message_id`."""
    return {
        "id": f"{message_id}:{frame.station}", "messageId": message_id,
        "device": frame.device, "deviceTypeId": device_type_id, "groupId": group_id,
        "registrationId": registration_id, "seqNumber": frame.seqNumber, "time": frame.time,
        "data": frame.data, "station": frame.station, "rssi": frame.rssi, "snr": frame.snr,
        "freq": frame.freq, "rep": frame.rep, "ack": frame.ack, "duplicate": True,
    }


# The record as JSON; orjson's own function, so that the hot path adds no Python call.
encode_message: Callable[[Message], bytes] = orjson.dumps


def decode_message(raw: bytes) -> Message:
    """The message in a record's value; raises naming the field it cannot use (see `schemas.fields`)."""
    return cast(Message, checked(orjson.loads(raw), "message", REQUIRED, OPTIONAL))
