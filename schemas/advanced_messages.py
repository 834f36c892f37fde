"""The `messages.advanced` record: DATA_ADVANCED, one per message once its window has closed.

Ingest publishes it when the message's window closes (25 s after the append
time of its first frame), keyed by device id:

    {"id": "<message id>:advanced", "messageId": "<message id>", "device": "00AB12CD",
     "deviceTypeId": "...", "groupId": "...", "registrationId": 7, "seqNumber": 123,
     "time": 1764165600000, "data": "0102ff", "ack": false,
     "duplicates": [{"bsId": "1A2B", "rssi": -121.5, "snr": 12.3, "nbRep": 3}, ...],
     "nbStations": 2, "nbFrames": 4, "lqi": "Good", "linkQuality": 2,
     "computedLocation": {"lat", "lng", "radius", "source": 2, "status": 1} | {"source": 2, "status": 20},
     "rinfos": [{"baseStation": "1A2B", "rssi", "snr", "freq", "rep": 3}, ...],
     "operatorName": "Backhaul", "countryCode": "250", "deadline": <the window's end, ms>,
     "fixedLat": 43.6, "fixedLng": 1.44}

`fixedLat`/`fixedLng` (the device's registered position) only when it has
one. The record holds no emission time: published again after a crash, it is
the same record. Read by the router (DATA_ADVANCED callbacks; `deadline` is
the delivery's origin) and the store.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NotRequired, TypedDict, cast

import orjson

from schemas.fields import Fields, NoneType, checked


class Duplicate(TypedDict):
    """One station's reception, as the DATA_ADVANCED callback's `duplicates` lists it."""

    bsId: str
    rssi: float
    snr: float
    nbRep: int


class Rinfo(TypedDict):
    """One station's reception, as the message's `rinfos` in the API."""

    baseStation: str
    rssi: float
    snr: float
    freq: int
    rep: int


class AdvancedMessage(TypedDict):
    id: str
    messageId: str
    device: str
    seqNumber: int
    time: int
    data: str
    duplicates: list[Duplicate]
    nbFrames: int
    lqi: str
    linkQuality: int
    computedLocation: dict[str, Any]
    rinfos: list[Rinfo]
    deadline: int
    deviceTypeId: NotRequired[str | None]
    groupId: NotRequired[str | None]
    registrationId: NotRequired[int | None]
    ack: NotRequired[bool]
    nbStations: NotRequired[int]
    operatorName: NotRequired[str | None]
    countryCode: NotRequired[str | None]
    fixedLat: NotRequired[float]
    fixedLng: NotRequired[float]


REQUIRED: Fields = (("id", (str,)), ("messageId", (str,)), ("device", (str,)), ("seqNumber", (int,)),
                    ("time", (int,)), ("data", (str,)), ("duplicates", (list,)), ("nbFrames", (int,)),
                    ("lqi", (str,)), ("linkQuality", (int,)), ("computedLocation", (dict,)),
                    ("rinfos", (list,)), ("deadline", (int,)))
OPTIONAL: Fields = (("deviceTypeId", (str, NoneType)), ("groupId", (str, NoneType)),
                    ("registrationId", (int, NoneType)), ("ack", (bool,)))


def advanced_message(message_id: str, device: str, *, device_type_id: str | None, group_id: str | None,
                     registration_id: int | None, seq_number: int, time_ms: int, data: str, ack: bool,
                     duplicates: list[Duplicate], rinfos: list[Rinfo], lqi: str, link_quality: int,
                     computed_location: dict[str, Any], operator_name: str, country_code: str, deadline_ms: int,
                     fixed_position: tuple[float, float] | None = None) -> AdvancedMessage:
    """The DATA_ADVANCED record of message `message_id`; `fixed_position` is the device's (lat, lng)."""
    record: AdvancedMessage = {
        "id": f"{message_id}:advanced", "messageId": message_id, "device": device,
        "deviceTypeId": device_type_id, "groupId": group_id,
        "registrationId": registration_id, "seqNumber": seq_number, "time": time_ms, "data": data, "ack": ack,
        "duplicates": duplicates, "nbStations": len(duplicates),
        "nbFrames": sum(d["nbRep"] for d in duplicates),
        "lqi": lqi, "linkQuality": link_quality, "computedLocation": computed_location,
        "rinfos": rinfos, "operatorName": operator_name, "countryCode": country_code, "deadline": deadline_ms,
    }
    if fixed_position is not None:
        record["fixedLat"], record["fixedLng"] = fixed_position
    return record


# The record as JSON; orjson's own function, so that the hot path adds no Python call.
encode_advanced_message: Callable[[AdvancedMessage], bytes] = orjson.dumps


def decode_advanced_message(raw: bytes) -> AdvancedMessage:
    """The DATA_ADVANCED record in a record's value; raises naming the field it cannot use."""
    return cast(AdvancedMessage, checked(orjson.loads(raw), "advanced message", REQUIRED, OPTIONAL))
