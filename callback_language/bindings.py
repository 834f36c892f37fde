"""The values of the `{variables}` of each callback kind, taken from stream records.

Which callbacks a record concerns, by (callbackType, callbackSubtype):
DATA (0) UPLINK (0) / BIDIR (1); SERVICE (1) STATUS (2), ACKNOWLEDGE (3),
REPEATER (4), DATA_ADVANCED (5); ERROR (2) ERROR (6); EVENT (7). Our
RESTORED event goes to the ERROR callbacks (its `severity` is INFO).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SUBTYPE_KIND = {0: "DATA_UPLINK", 1: "DATA_BIDIR", 2: "STATUS", 3: "ACKNOWLEDGE", 4: "REPEATER",
                5: "DATA_ADVANCED", 6: "ERROR", 7: "EVENT"}

# record kind -> callback subtypes it is delivered to
TARGETS = {
    "DATA": (0, 1),
    "DATA_ADVANCED": (5,),
    "STATUS": (2,),
    "ACKNOWLEDGE": (3,),
    "REPEATER": (4,),
    "ERROR": (6,),
    "RESTORED": (6,),
    "SEQUENCE_BREAK": (7,),
    "OUT_OF_SEQUENCE": (7,),
}
EVENT_SEVERITY = {"SEQUENCE_BREAK": "WARN", "OUT_OF_SEQUENCE": "WARN"}


def data_variables(m: Mapping[str, Any]) -> dict[str, Any]:
    """DATA UPLINK / BIDIR variables of a message record."""
    v = {
        "time": m["time"] // 1000, "device": m["device"], "deviceTypeId": m.get("deviceTypeId"),
        "data": m["data"], "seqNumber": m["seqNumber"], "snr": m["snr"], "rssi": m["rssi"],
        "station": m["station"], "duplicate": m.get("duplicate", False), "avgSnr": m.get("avgSnr", "N/A"),
        "ack": m.get("ack", False), "longPolling": False,
    }
    if "lat" in m:
        v["lat"], v["lng"] = m["lat"], m["lng"]
    return v


def advanced_variables(a: Mapping[str, Any]) -> dict[str, Any]:
    """SERVICE DATA_ADVANCED variables of an aggregate record."""
    v = {
        "device": a["device"], "time": a["time"] // 1000, "data": a["data"], "seqNumber": a["seqNumber"],
        "lqi": a["lqi"], "linkQuality": a["linkQuality"], "operatorName": a.get("operatorName"),
        "countryCode": a.get("countryCode"), "duplicates": a["duplicates"],
        "computedLocation": a["computedLocation"],
    }
    if "fixedLat" in a:
        v["fixedLat"], v["fixedLng"] = a["fixedLat"], a["fixedLng"]
    return v


def event_variables(e: Mapping[str, Any], stations: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Variables of a device event (STATUS, REPEATER, ACKNOWLEDGE, ERROR, RESTORED, EVENT).

    STATUS and REPEATER take the time of the service frame; STATUS adds the
    uplink metadata of a first frame (not a duplicate; lat/lng of the
    receiving station, rounded, from `stations`).
    """
    kind = e["type"]
    v: dict[str, Any] = {"time": e["time"] // 1000, "device": e["device"]}
    if kind in ("STATUS", "REPEATER"):
        v["time"] = e.get("frameTime", e["time"]) // 1000
        v.update({k: e[k] for k in ("batt", "temp", "whitelistDevices", "repeatedMsg", "unwantedDevices",
                                     "unwantedMsg", "wrongMsg", "overRegulMsg", "seqNumber", "station",
                                     "rssi", "snr") if k in e})
        if kind == "STATUS":
            v["duplicate"] = False
            v["avgSnr"] = e.get("avgSnr", "N/A")
            station = (stations or {}).get(e.get("station") or "") or {}  # pragma: no mutate (no station is "XXXX")
            if station.get("lat") is not None:
                v["lat"], v["lng"] = round(station["lat"]), round(station["lng"])
    elif kind == "ACKNOWLEDGE":
        v.update({k: e[k] for k in ("infoCode", "infoMessage", "downlinkAck", "downlinkOverusage") if k in e})
    elif kind in ("ERROR", "RESTORED"):
        v["info"], v["severity"] = e["info"], e["severity"]
        if kind == "RESTORED":
            v["lastErrorTime"] = e["lastErrorTime"] // 1000
    else:
        v.update({"sourceType": "DEVICE", "sourceId": e["device"], "severity": EVENT_SEVERITY.get(kind, "INFO"),
                  "eventType": kind, "deviceTypeId": e.get("deviceTypeId"), "groupId": e.get("groupId"),
                  "deviceLastSeqnumber": e.get("deviceLastSeqnumber"),
                  "deviceMessageSeqnumber": e.get("deviceMessageSeqnumber")})
    return v
