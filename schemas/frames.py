"""The radio frame a base station publishes, and its validation.

A frame is one reception of one device transmission by one station. Stations
publish it as a JSON object to the `frames` topic, keyed by device id:

    {"station": "1A2B", "device": "00AB12CD", "seqNumber": 123,
     "time": 1764165600000, "data": "0102ff", "rssi": -121.5, "snr": 12.3,
     "freq": 868130000, "rep": 1, "ack": false, "oob": false}

`time` is epoch milliseconds at the station; `rep` is the repetition index
(1..3) of the frame within one transmission; `ack` says the device asks for a
downlink; `oob` marks an out-of-band (service) frame. Device and station ids
are normalised to upper case.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

MAX_PAYLOAD_BYTES = 12
SEQ_MODULO = 4096

_HEX = re.compile(r"[0-9A-Fa-f]*")


class FrameError(ValueError):
    """A frame that cannot be accepted; `field` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    @property
    def code(self) -> str:
        """A short, label-safe reason code such as `seqNumber.range`."""
        return f"{self.field}.{self.reason.split(' ', 1)[0]}" if self.field else self.reason


@dataclass(slots=True)
class Frame:
    station: str
    device: str
    seqNumber: int
    time: int
    data: str
    rssi: float
    snr: float
    freq: int
    rep: int
    ack: bool
    oob: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "station": self.station, "device": self.device, "seqNumber": self.seqNumber,
            "time": self.time, "data": self.data, "rssi": self.rssi, "snr": self.snr,
            "freq": self.freq, "rep": self.rep, "ack": self.ack, "oob": self.oob,
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())


def _hex(obj: dict, field: str, min_len: int, max_len: int) -> str:
    value = obj.get(field)
    if value is None:
        raise FrameError(field, "missing")
    if not isinstance(value, str):
        raise FrameError(field, f"type must be a hex string, got {type(value).__name__}")
    if not (min_len <= len(value) <= max_len):
        if min_len == max_len:
            raise FrameError(field, f"length must be {min_len} hex characters, got {len(value)}")
        raise FrameError(field, f"length must be {min_len}..{max_len} hex characters, got {len(value)}")
    if not _HEX.fullmatch(value):
        raise FrameError(field, f"format not hex: {value[:32]!r}")
    return value.upper()


def _int(obj: dict, field: str, lo: int, hi: int, *, default: int | None = None) -> int:
    value = obj.get(field, default)
    if value is None:
        raise FrameError(field, "missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameError(field, f"type must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise FrameError(field, f"range must be {lo}..{hi}, got {value}")
    return value


def _number(obj: dict, field: str, lo: float, hi: float) -> float:
    value = obj.get(field)
    if value is None:
        raise FrameError(field, "missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FrameError(field, f"type must be a number, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise FrameError(field, f"range must be {lo}..{hi}, got {value}")
    return float(value)


def _bool(obj: dict, field: str) -> bool:
    value = obj.get(field, False)
    if not isinstance(value, bool):
        raise FrameError(field, f"type must be true or false, got {type(value).__name__}")
    return value


def validate_frame(obj: Any) -> Frame:
    """Check a decoded JSON object and return the `Frame`, or raise `FrameError`."""
    if not isinstance(obj, dict):
        raise FrameError("frame", f"type must be a JSON object, got {type(obj).__name__}")
    data = obj.get("data", "")
    if isinstance(data, str) and len(data) % 2:
        raise FrameError("data", f"length must be an even number of hex characters, got {len(data)}")
    if isinstance(data, str) and len(data) > 2 * MAX_PAYLOAD_BYTES:
        raise FrameError("data", f"length must be at most {MAX_PAYLOAD_BYTES} bytes, got {len(data) // 2}")
    return Frame(
        station=_hex(obj, "station", 4, 4),
        device=_hex(obj, "device", 1, 8),
        seqNumber=_int(obj, "seqNumber", 0, SEQ_MODULO - 1),
        time=_int(obj, "time", 0, 2**53),
        data=_hex({"data": data}, "data", 0, 2 * MAX_PAYLOAD_BYTES).lower(),
        rssi=_number(obj, "rssi", -200.0, 0.0),
        snr=_number(obj, "snr", -50.0, 100.0),
        freq=_int(obj, "freq", 0, 6_000_000_000),
        rep=_int(obj, "rep", 1, 3, default=1),
        ack=_bool(obj, "ack"),
        oob=_bool(obj, "oob"),
    )


def decode_frame(raw: bytes | None) -> Frame:
    """Decode and validate the bytes of one Kafka record value."""
    if raw is None:
        raise FrameError("frame", "missing (empty record value)")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError("frame", f"format not JSON: {exc}") from None
    return validate_frame(obj)
