"""The `{variable}` catalogue of each callback kind (behaviour reference, section 4).

Kinds and their variables:

- DATA_UPLINK: time (epoch s), device, deviceTypeId, data (hex), seqNumber, snr,
  rssi, station, duplicate (legacy, bool), avgSnr (number, or "N/A" below 15
  messages), lat, lng (receiving station, rounded), customData#<field>.
- DATA_BIDIR: DATA_UPLINK plus ack (bool) and longPolling (bool).
- DATA_ADVANCED: device, time, data, seqNumber, lqi (string), linkQuality (int),
  fixedLat, fixedLng, operatorName, countryCode, duplicates (JSON array of
  {bsId, rssi, snr, nbRep}), computedLocation (JSON {lat, lng, radius, source,
  status}), customData#<field>.
- STATUS: device, time, temp, batt, seqNumber and the uplink metadata, which we
  take to be station, snr, rssi, avgSnr, lat, lng and duplicate.
- ACKNOWLEDGE: time, device, infoCode, infoMessage, downlinkAck, downlinkOverusage.
- REPEATER: time, device, batt, whitelistDevices, repeatedMsg, unwantedDevices,
  unwantedMsg, wrongMsg, overRegulMsg.
- ERROR: time, device, info ("No message received since <date>"), severity ("ERROR").
- EVENT: time, sourceType, sourceId, severity, eventType, deviceTypeId, groupId,
  deviceLastSeqnumber, deviceMessageSeqnumber.
- RESTORED (ours; Sigfox has no such event): sent when a device whose keep-alive
  ERROR fired is heard again. time (epoch s of the message that ended the
  breach), device, info ("Message received again after <date>"), severity
  ("INFO"), lastErrorTime (epoch s of the ERROR it ends).

Backhaul extensions, in every kind: deliveryId (string), the stable id of the
delivery (`<record id>/<callback id>`, the `webhook-id` header's value), so a
channel without message attributes (KINESIS) can carry it in the body.

`customData#<field>` (the custom payload grammar's outputs) exists for
DATA_UPLINK, DATA_BIDIR and DATA_ADVANCED; `<field>` matches [A-Za-z0-9_-]+.
Variables in OBJECT_VARIABLES carry lists or dicts and are inserted as JSON.
"""
from __future__ import annotations

import re
from typing import Any

CUSTOM_DATA_PREFIX = "customData#"
CUSTOM_DATA_KINDS = frozenset({"DATA_UPLINK", "DATA_BIDIR", "DATA_ADVANCED"})
OBJECT_VARIABLES = frozenset({"duplicates", "computedLocation"})
EXTENSIONS = frozenset({"deliveryId"})
"""Backhaul's variables, bound in every kind (not in VARIABLES, which is Sigfox's catalogue)."""

_UPLINK_METADATA = ("station", "snr", "rssi", "avgSnr", "lat", "lng", "duplicate")
_UPLINK = ("time", "device", "deviceTypeId", "data", "seqNumber", *_UPLINK_METADATA)

VARIABLES: dict[str, frozenset[str]] = {
    "DATA_UPLINK": frozenset(_UPLINK),
    "DATA_BIDIR": frozenset((*_UPLINK, "ack", "longPolling")),
    "DATA_ADVANCED": frozenset((
        "device", "time", "data", "seqNumber", "lqi", "linkQuality", "fixedLat",
        "fixedLng", "operatorName", "countryCode", "duplicates", "computedLocation",
    )),
    "STATUS": frozenset(("device", "time", "temp", "batt", "seqNumber", *_UPLINK_METADATA)),
    "ACKNOWLEDGE": frozenset((
        "time", "device", "infoCode", "infoMessage", "downlinkAck", "downlinkOverusage",
    )),
    "REPEATER": frozenset((
        "time", "device", "batt", "whitelistDevices", "repeatedMsg", "unwantedDevices",
        "unwantedMsg", "wrongMsg", "overRegulMsg",
    )),
    "ERROR": frozenset(("time", "device", "info", "severity")),
    "EVENT": frozenset((
        "time", "sourceType", "sourceId", "severity", "eventType", "deviceTypeId",
        "groupId", "deviceLastSeqnumber", "deviceMessageSeqnumber",
    )),
    "RESTORED": frozenset(("time", "device", "info", "severity", "lastErrorTime")),
}

SAMPLES: dict[str, Any] = {
    "time": 1764165600, "device": "00AB12CD", "deviceTypeId": "5f1e0a2b3c4d5e6f7a8b9c0d",
    "data": "0102ff", "seqNumber": 123, "snr": 12.3, "rssi": -121.5, "station": "1A2B",
    "duplicate": False, "avgSnr": 15.2, "lat": 43.6, "lng": 1.4, "ack": True,
    "longPolling": False, "lqi": "Good", "linkQuality": 2, "fixedLat": 43.6,
    "fixedLng": 1.4, "operatorName": "BACKHAUL", "countryCode": 250,
    "duplicates": [{"bsId": "1A2B", "rssi": -121.5, "snr": 12.3, "nbRep": 3}],
    "computedLocation": {"lat": 43.6, "lng": 1.4, "radius": 1500, "source": 2, "status": 1},
    "temp": 21.5, "batt": 3.3, "infoCode": 0, "infoMessage": "Acked",
    "downlinkAck": True, "downlinkOverusage": False, "whitelistDevices": 3,
    "repeatedMsg": 5, "unwantedDevices": 0, "unwantedMsg": 0, "wrongMsg": 0,
    "overRegulMsg": 0, "info": "No message received since 2025-11-26 14:00:00",
    "severity": "ERROR", "sourceType": "DEVICE", "sourceId": "00AB12CD",
    "eventType": "SEQUENCE_BREAK", "groupId": "5f1e0a2b3c4d5e6f7a8b9c0e",
    "deviceLastSeqnumber": 120, "deviceMessageSeqnumber": 123,
    "lastErrorTime": 1764162000, "deliveryId": "00AB12CD-1764165600000-123/5f1e0a2b3c4d5e6f7a8b9c0f",
}
"""A representative value of the right JSON type for every variable."""

CUSTOM_DATA_SAMPLE = 42

_CUSTOM_FIELD = re.compile(r"[A-Za-z0-9_-]+")


def custom_field(name: str) -> str | None:
    """The grammar field of a well-formed `customData#<field>` name, else None."""
    if name.startswith(CUSTOM_DATA_PREFIX):
        field = name[len(CUSTOM_DATA_PREFIX):]
        if _CUSTOM_FIELD.fullmatch(field):
            return field
    return None


def allowed(kind: str, name: str) -> bool:
    """Whether `{name}` may appear in a callback of `kind`."""
    names = VARIABLES.get(kind)
    if names is None:
        return False
    if name in names or name in EXTENSIONS:
        return True
    return kind in CUSTOM_DATA_KINDS and custom_field(name) is not None


def sample(name: str) -> Any:
    """A representative value for `name` (customData fields get a number)."""
    return SAMPLES.get(name, CUSTOM_DATA_SAMPLE)
