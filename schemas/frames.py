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

Anything else is refused with a `<field>.<what>` reason (`FrameError.code`):
a record over the size limit (`frame.size`, checked before parsing), an empty
one (`frame.missing`), bytes that are not UTF-8 or escape a lone surrogate
(`frame.encoding`), a raw control character in a string (`frame.control`),
NaN, Infinity or a number beyond a double (`frame.number`), nesting deeper
than the parser's 1024 levels (`frame.depth`), a key given twice
(`frame.duplicate`: parsers disagree on which copy wins), any other invalid
JSON (`frame.format`), JSON that is not an object (`frame.type`), then each
field's own checks (`station.format`, `seqNumber.range`, `rssi.type`, ...).
A refused frame is described by `rejection()`, never copied: that is the
`frames.rejected` record (`Rejection`, `decode_rejection`).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict, cast

import orjson

from schemas.excerpt import bounded_text, excerpt
from schemas.fields import Fields, NoneType, checked

MAX_PAYLOAD_BYTES = 12
SEQ_MODULO = 4096
# The longest reason message a rejection carries (our messages are far shorter; this is a bound).
MESSAGE_CHARS = 300
# A rejection's Kafka key: at most this many bytes of the frame's key.
KEY_BYTES = 64

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


class FrameRecord(TypedDict):
    """A frame as a station publishes it (`validate_frame` makes a `Frame` of it)."""

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


# The record as JSON; orjson's own function, so that the hot path adds no Python call.
encode_frame: Callable[[FrameRecord], bytes] = orjson.dumps


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

    def to_dict(self) -> FrameRecord:
        return {
            "station": self.station, "device": self.device, "seqNumber": self.seqNumber,
            "time": self.time, "data": self.data, "rssi": self.rssi, "snr": self.snr,
            "freq": self.freq, "rep": self.rep, "ack": self.ack, "oob": self.oob,
        }

    def encode(self) -> bytes:
        return encode_frame(self.to_dict())


def _hex(obj: dict[str, Any], field: str, min_len: int, max_len: int) -> str:
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


def _int(obj: dict[str, Any], field: str, lo: int, hi: int, *, default: int | None = None) -> int:
    value = obj.get(field, default)
    if value is None:
        raise FrameError(field, "missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameError(field, f"type must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise FrameError(field, f"range must be {lo}..{hi}, got {value}")
    return value


def _number(obj: dict[str, Any], field: str, lo: float, hi: float) -> float:
    value = obj.get(field)
    if value is None:
        raise FrameError(field, "missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FrameError(field, f"type must be a number, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise FrameError(field, f"range must be {lo}..{hi}, got {value}")
    return float(value)


def _bool(obj: dict[str, Any], field: str) -> bool:
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


class _DuplicateKey(ValueError):
    pass

def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


_STRICT = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def _has_duplicate_key(raw: bytes, obj: Any) -> str | None:
    """The first key given twice in the document, if any.

    Outside strings a colon only ever follows a key, so when the document holds
    no more colons than the top-level object has keys (every valid frame: hex,
    numbers and booleans hold none) no key can repeat and the exact check, a
    second parse, is skipped.
    """
    if not isinstance(obj, dict) or raw.count(b":") <= len(obj):
        return None
    try:
        _STRICT.decode(raw.decode("utf-8"))
    except _DuplicateKey as exc:
        return str(exc.args[0])
    except (RecursionError, ValueError):
        pass  # orjson accepted the document; only duplicates are looked for here
    return None


def _json_error(raw: bytes, exc: orjson.JSONDecodeError) -> FrameError:
    """A `frame.<what>` reason for a document orjson refused."""
    text = str(exc)
    head = raw[exc.pos:exc.pos + 9].lstrip(b"-+")
    if "UTF-8" in text or "surrogate" in text:
        return FrameError("frame", f"encoding not UTF-8 text: {text}")
    if "depth limit" in text:
        return FrameError("frame", f"depth over the parser's nesting limit: {text}")
    if "control character" in text:
        return FrameError("frame", f"control character in a string (escape it as \\u00XX): {text}")
    if "infinity" in text or head.startswith((b"NaN", b"Infinity")):
        return FrameError("frame", f"number not finite (NaN, Infinity or beyond a double): {text}")
    if "empty" in text:
        return FrameError("frame", "missing (empty record value)")
    return FrameError("frame", f"format not JSON: {text}")


def decode_frame(raw: bytes | None, max_bytes: int | None = None, key: bytes | None = None) -> Frame:
    """Decode and validate the value of one Kafka record; with `max_bytes`, the record
    (its `key` and value) must not be larger: it is refused before parsing."""
    size = len(raw or b"") + len(key or b"")
    if max_bytes is not None and size > max_bytes:
        part = f" (key {len(key)} + value {len(raw or b'')})" if key else ""
        raise FrameError("frame", f"size {size} bytes{part} over the limit of {max_bytes} bytes")
    if raw is None:
        raise FrameError("frame", "missing (empty record value)")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _json_error(raw, exc) from None
    twice = _has_duplicate_key(raw, obj)
    if twice is not None:
        raise FrameError("frame", f"duplicate key {bounded_text(twice, 40)!r}: a key may appear once")
    return validate_frame(obj)


class Rejection(TypedDict):
    """The `frames.rejected` record (see `rejection`)."""

    reason: str
    message: str
    raw: dict[str, Any] | None
    key: dict[str, Any] | None
    topic: str
    partition: int
    offset: int
    rejectedAt: int


REJECTION_FIELDS: Fields = (("reason", (str,)), ("message", (str,)), ("raw", (dict, NoneType)),
                            ("key", (dict, NoneType)), ("topic", (str,)), ("partition", (int,)),
                            ("offset", (int,)), ("rejectedAt", (int,)))


def rejection(reason: str, message: str, *, key: bytes | None, value: bytes | None, topic: str,
              partition: int, offset: int, time_ms: int) -> tuple[bytes | None, bytes]:
    """The `frames.rejected` record (key, value) for a refused frame.

    The frame is described, not copied: its first bytes (base64), length and
    SHA-256, and the same for its key, so the record stays under 2 KiB
    whatever was sent:

        {"reason": "station.format", "message": "station: format not hex: 'ZZZZ'",
         "raw": {"prefix": "eyJzdGF0aW9u...", "length": 183, "sha256": "..."},
         "key": {"prefix": "MDBBQjEyQ0Q=", "length": 8, "sha256": "..."},
         "topic": "frames", "partition": 1, "offset": 42, "rejectedAt": 1764165600000}
    """
    body: Rejection = {"reason": bounded_text(reason, 100), "message": bounded_text(message, MESSAGE_CHARS),
                       "raw": excerpt(value), "key": excerpt(key), "topic": topic, "partition": partition,
                       "offset": offset, "rejectedAt": time_ms}
    return (key[:KEY_BYTES] if key is not None else None), orjson.dumps(body)


def decode_rejection(raw: bytes) -> Rejection:
    """The `frames.rejected` record in a record's value; raises naming the field it cannot use."""
    return cast(Rejection, checked(orjson.loads(raw), "rejection", REJECTION_FIELDS))
