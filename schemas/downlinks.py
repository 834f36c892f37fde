"""The `downlinks` record: a downlink granted for an uplink, for the stations to transmit.

The delivery worker publishes it once a BIDIR callback's answer (CALLBACK) or
the device type's template (DIRECT) gave 8 bytes and the contract and daily
quota allowed them, keyed by device id:

    {"id": "<uplink id>", "device": "00AB12CD", "messageId": "<uplink id>", "data": "0011223344556677",
     "station": "1A2B" | null, "source": "CALLBACK" | "DIRECT", "deviceTypeId": "...", "groupId": "...",
     "registrationId": 7, "createdAt": <ms>, "transmitBy": <ms: the device stops listening>}

`station` is the station that delivered the uplink, the fallback when the
stations do not know which of them heard it best. Read by the stations.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NotRequired, TypedDict, cast

import orjson

from schemas.deliveries import Delivery
from schemas.fields import Fields, NoneType, checked


class Downlink(TypedDict):
    id: str
    device: str
    data: str
    transmitBy: int
    messageId: NotRequired[str | None]
    station: NotRequired[str | None]
    source: NotRequired[Literal["CALLBACK", "DIRECT"]]
    deviceTypeId: NotRequired[str | None]
    groupId: NotRequired[str | None]
    registrationId: NotRequired[int | None]
    createdAt: NotRequired[int]


REQUIRED: Fields = (("id", (str,)), ("device", (str,)), ("data", (str,)), ("transmitBy", (int,)))
OPTIONAL: Fields = (("messageId", (str, NoneType)), ("station", (str, NoneType)))


def granted(delivery: Delivery, data_hex: str, *, created_ms: int, transmit_by_ms: int) -> Downlink:
    """The downlink `delivery` (a BIDIR callback's, or a DIRECT one) obtained for its uplink."""
    return {"id": delivery["recordId"], "device": delivery["device"], "messageId": delivery.get("messageId"),
            "data": data_hex, "station": delivery["variables"].get("station"),
            "source": "DIRECT" if delivery["channel"] == "DIRECT" else "CALLBACK",
            "deviceTypeId": delivery.get("deviceTypeId"), "groupId": delivery.get("groupId"),
            "registrationId": delivery.get("registrationId"), "createdAt": created_ms, "transmitBy": transmit_by_ms}


# The record as JSON; orjson's own function, so that the hot path adds no Python call.
encode_downlink: Callable[[Downlink], bytes] = orjson.dumps


def decode_downlink(raw: bytes) -> Downlink:
    """The downlink in a record's value; raises naming the field it cannot use (see `schemas.fields`)."""
    return cast(Downlink, checked(orjson.loads(raw), "downlink", REQUIRED, OPTIONAL))
