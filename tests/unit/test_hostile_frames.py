"""Frames of any size or content get one clear `<field>.<what>` reason, and their rejection stays small."""
from __future__ import annotations

import base64
import hashlib
import random

import orjson
import pytest

from schemas.frames import FrameError, decode_frame, rejection

LIMIT = 4096
VALID = {"station": "1A2B", "device": "00AB12CD", "seqNumber": 123, "time": 1764165600000, "data": "0102ff",
         "rssi": -121.5, "snr": 12.3, "freq": 868130000, "rep": 1, "ack": False, "oob": False}


def reason(raw: bytes | None, key: bytes | None = None) -> str:
    with pytest.raises(FrameError) as caught:
        decode_frame(raw, LIMIT, key)
    return caught.value.code


def with_field(text: str) -> bytes:
    """The valid frame with one more raw JSON member spliced in."""
    return orjson.dumps(VALID)[:-1] + b"," + text.encode("utf-8", "surrogatepass") + b"}"


@pytest.mark.parametrize("raw, expected", [
    (None, "frame.missing"),
    (b"", "frame.missing"),
    (b"x" * (LIMIT + 1), "frame.size"),
    (random.Random(1).randbytes(1_000_000), "frame.size"),
    (b"[" * 2000 + b"]" * 2000, "frame.depth"),
    (with_field('"x":"\xff"').replace(b"\xc3\xbf", b"\xff"), "frame.encoding"),
    (with_field('"x":"\\ud800"'), "frame.encoding"),
    (b"\xef\xbb\xbf" + orjson.dumps(VALID), "frame.encoding"),
    (with_field('"x":"a\x01b"'), "frame.control"),
    (with_field('"x":NaN'), "frame.number"),
    (with_field('"x":-Infinity'), "frame.number"),
    (with_field('"x":1e999'), "frame.number"),
    (with_field('"station":"FFFF"'), "frame.duplicate"),
    (with_field('"extra":{"a":1,"a":2}'), "frame.duplicate"),
    (b"this is not JSON", "frame.format"),
    (orjson.dumps(VALID)[:-1], "frame.format"),
    (b"[1, 2]", "frame.type"),
    (b'"a string"', "frame.type"),
    (b"12", "frame.type"),
    (orjson.dumps({**VALID, "seqNumber": "12"}), "seqNumber.type"),
    (orjson.dumps({**VALID, "seqNumber": 12.0}), "seqNumber.type"),
    (orjson.dumps(VALID).replace(b"1764165600000", b"1" + b"0" * 30), "time.type"),  # beyond 64 bits: a float
    (orjson.dumps({**VALID, "rssi": 1e308}), "rssi.range"),
    (orjson.dumps({**VALID, "station": ["1A2B"]}), "station.type"),
    (orjson.dumps({**VALID, "device": {"id": "AB"}}), "device.type"),
    (orjson.dumps({**VALID, "station": "\x01\x02\x03\x04"}), "station.format"),
    (orjson.dumps({**VALID, "ack": "yes"}), "ack.type"),
])
def test_every_hostile_frame_has_a_clear_reason(raw, expected):
    assert reason(raw) == expected


def test_the_key_counts_toward_the_size_limit():
    assert reason(orjson.dumps(VALID), key=b"k" * LIMIT) == "frame.size"
    assert decode_frame(orjson.dumps(VALID), LIMIT, b"00AB12CD").device == "00AB12CD"


def test_a_colon_in_a_string_is_not_mistaken_for_a_duplicate_key():
    assert decode_frame(with_field('"note":"a:b:c:d"'), LIMIT).seqNumber == 123


def test_deep_nesting_under_the_parser_limit_is_a_type_error_not_a_crash():
    nested = b'{"station":' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert reason(nested) == "station.type"


@pytest.mark.parametrize("value", [
    random.Random(2).randbytes(1_000_000),
    bytes(range(32)) * 12_500 + b'"\\' * 1000,    # 400 KB of bytes JSON would escape 6 times over
    None,
])
def test_a_rejection_describes_the_input_in_bounded_space(value):
    key = b"\x00\"\\" * 300_000
    out_key, body = rejection("frame.size", "frame: size over the limit", key=key, value=value, topic="frames",
                              partition=3, offset=77, time_ms=1)
    assert len(body) < 2048 and len(out_key) <= 64
    record = orjson.loads(body)
    assert (record["reason"], record["topic"], record["partition"], record["offset"]) == ("frame.size", "frames", 3, 77)
    assert record["key"]["length"] == len(key) and record["key"]["sha256"] == hashlib.sha256(key).hexdigest()
    if value is None:
        assert record["raw"] is None
    else:
        assert record["raw"]["length"] == len(value)
        assert record["raw"]["sha256"] == hashlib.sha256(value).hexdigest()
        assert base64.b64decode(record["raw"]["prefix"]) == value[:256]


def test_a_long_message_is_cut():
    _, body = rejection("x.y", "m" * 100_000, key=None, value=b"", topic="frames", partition=0, offset=0, time_ms=1)
    assert len(orjson.loads(body)["message"]) < 400
