"""The `downlinks` and `downlink-transmissions` records: a downlink granted for an uplink, then on its way to the
station that transmits it.

The delivery worker publishes a grant to `downlinks` once a BIDIR callback's answer (CALLBACK) or
the device type's template (DIRECT) gave a downlink and the contract, the device's receive windows
and its daily quota allowed it, keyed by device id:

    {"id": "<uplink id>", "device": "00AB12CD", "messageId": "<uplink id>", "uplinkTime": <ms>,
     "data": "0011223344556677" (CALLBACK) | "template": "{tapId}{rssi}{time}" (DIRECT),
     "station": "1A2B" | null, "rssi": -121.5 | null, "source": "CALLBACK" | "DIRECT", "deviceTypeId": "...", "groupId": "...",
     "registrationId": 7, "createdAt": <ms>, "transmitBy": <ms: the device opens its receive window>}

`station` (and `rssi`) is the uplink's first reception, the fallback when no reception is known.
The dispatcher (`workers.downlink_dispatch`) holds the grant until the downlink must leave, chooses
the station that heard the uplink best by then, renders a DIRECT template for it, and publishes the
same record to `downlink-transmissions` with `data` final, `station` and its `rssi`, and `leftAt`.
The stations read the transmissions; the store reads both.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NotRequired, TypedDict, cast

import orjson

from schemas.deliveries import Delivery
from schemas.fields import NUMBER, Fields, NoneType, checked


class Downlink(TypedDict):
    id: str
    device: str
    transmitBy: int
    data: NotRequired[str]        # a grant in CALLBACK mode; every transmission
    template: NotRequired[str]    # a grant in DIRECT mode
    uplinkTime: NotRequired[int]
    messageId: NotRequired[str | None]
    station: NotRequired[str | None]
    source: NotRequired[Literal["CALLBACK", "DIRECT"]]
    deviceTypeId: NotRequired[str | None]
    groupId: NotRequired[str | None]
    registrationId: NotRequired[int | None]
    createdAt: NotRequired[int]
    rssi: NotRequired[float | None]  # the reception of `station`
    leftAt: NotRequired[int]         # a transmission: when it left for the station


REQUIRED: Fields = (("id", (str,)), ("device", (str,)), ("transmitBy", (int,)))
OPTIONAL: Fields = (("messageId", (str, NoneType)), ("station", (str, NoneType)), ("data", (str,)),
                    ("template", (str,)), ("uplinkTime", (int,)), ("registrationId", (int, NoneType)))
TRANSMISSION: Fields = (("data", (str,)), ("leftAt", (int,)))
TRANSMISSION_OPTIONAL: Fields = (("rssi", (*NUMBER, NoneType)),)


def granted(delivery: Delivery, data_hex: str | None, *, created_ms: int, transmit_by_ms: int) -> Downlink:
    """The downlink `delivery` (a BIDIR callback's, or a DIRECT one) obtained for its uplink: `data_hex`,
    else (DIRECT) its template."""
    record: Downlink = {
        "id": delivery["recordId"], "device": delivery["device"], "messageId": delivery.get("messageId"),
        "uplinkTime": uplink_time_ms(delivery), "station": delivery["variables"].get("station"),
        "rssi": delivery["variables"].get("rssi"),
        "source": "DIRECT" if delivery["channel"] == "DIRECT" else "CALLBACK",
        "deviceTypeId": delivery.get("deviceTypeId"), "groupId": delivery.get("groupId"),
        "registrationId": delivery.get("registrationId"), "createdAt": created_ms, "transmitBy": transmit_by_ms}
    if data_hex is not None:
        record["data"] = data_hex
    else:
        record["template"] = delivery["downlinkTemplate"]
    return record


def uplink_time_ms(delivery: Delivery) -> int:
    """The time of the uplink a delivery is about (its first frame, at the station), ms."""
    return int(delivery.get("messageTime") or delivery["origin"])


def transmission(grant: Downlink, *, station: str | None, rssi: float | None, data_hex: str,
                 now_ms: int) -> Downlink:
    """The grant on its way to `station` (heard the uplink at `rssi`), with its final data."""
    record = cast(Downlink, {k: v for k, v in grant.items() if k != "template"})
    record.update({"station": station, "rssi": rssi, "data": data_hex, "leftAt": now_ms})
    return record


# The record as JSON; orjson's own function, so that the hot path adds no Python call.
encode_downlink: Callable[[Downlink], bytes] = orjson.dumps


def decode_downlink(raw: bytes) -> Downlink:
    """The grant in a record's value; raises naming the field it cannot use (see `schemas.fields`)."""
    record = checked(orjson.loads(raw), "downlink", REQUIRED, OPTIONAL)
    if "data" not in record and "template" not in record:
        raise KeyError("data")
    return cast(Downlink, record)


def decode_transmission(raw: bytes) -> Downlink:
    """The transmission in a record's value; raises naming the field it cannot use."""
    record = checked(orjson.loads(raw), "downlink transmission", REQUIRED, OPTIONAL)
    return cast(Downlink, checked(record, "downlink transmission", TRANSMISSION, TRANSMISSION_OPTIONAL))
