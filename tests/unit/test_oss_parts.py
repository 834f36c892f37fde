"""Pure parts of the OSS API: fields=, body validation, rate limits, secrets, CSV rows, tokens."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oss.auth import Caller, CredentialCache, hash_secret, verify_secret
from oss.bulk_rows import checked_rows, csv_rows
from oss.fields import parse_fields
from oss.ratelimit import RateLimiter, limit_name, parse_limits
from oss.tokens import token_end
from oss.validate import field_errors


def test_fields_nested_and_errors():
    assert parse_fields("deviceType(name),group(name,type,level)") == {
        "deviceType": {"name": {}}, "group": {"name": {}, "type": {}, "level": {}}}
    assert parse_fields("rinfos(baseStation(name)),oob") == {"rinfos": {"baseStation": {"name": {}}}, "oob": {}}
    for bad in ("a(", "a)", "(a", "a,,b", "a b", "a(b))"):
        with pytest.raises(ValueError):
            parse_fields(bad)


@given(st.text(max_size=30))
def test_fields_never_crash(text):
    try:
        parse_fields(text)
    except ValueError:
        pass


def test_validation_names_every_field():
    errors = field_errors({"name": "", "pac": "12", "deviceTypeId": "x" * 24, "lat": 100, "id": "00ZZ"},
                          "deviceCreationJob")
    assert {e.field: e.message for e in errors} == {
        "id": "must be 1 to 8 hexadecimal characters", "name": "must be at least 1 characters",
        "pac": "must be 16 hexadecimal characters", "deviceTypeId": "must be 24 hexadecimal characters",
        "lat": "must be at most 90"}
    assert [e.field for e in field_errors({"channel": "URL", "callbackType": True}, "createCallback")] == [
        "enabled", "url", "httpMethod", "callbackType"]
    assert field_errors({"name": "ok", "parentId": "a" * 24, "description": "x\x00"}, "groupCreate")[0].field \
        == "description"
    assert field_errors({"data": [{"id": "1"}, "nope"]}, "asynchronousDeviceEditionJob")[0].field == "data[1]"
    assert field_errors({"data": [{"id": "1"}, "nope"]}, "asynchronousDeviceEditionJob", rows="data") == []


def test_sliding_window_and_named_limits():
    limits = parse_limits("device-list=2/10,default=0/1")
    assert limits["bulk"].count == 5 and limits["device-messages"].period == 1.0
    limiter = RateLimiter(limits)
    assert [limiter.check("device-list", ("u",)) for _ in range(3)][:2] == [None, None]
    assert limiter.check("device-list", ("u",)) >= 1
    assert limiter.check("device-list", ("other",)) is None
    assert limiter.check("default", ("u",)) is None
    assert limit_name("GET", "/v2/devices/{id}/messages") == "device-messages"
    assert limit_name("POST", "/v2/devices/bulk/transfer") == "bulk"
    assert limit_name("GET", "/v2/devices/bulk/{jobId}") == "default"
    with pytest.raises(ValueError):
        parse_limits("bulk=five/600")


def test_secrets_are_hashed_and_cached_by_digest():
    stored = hash_secret("s3cret")
    assert "s3cret" not in stored and verify_secret("s3cret", stored) and not verify_secret("other", stored)
    assert not verify_secret("s3cret", "garbage")
    cache = CredentialCache(ttl=60)
    key = cache.key("a" * 24, "s3cret")
    assert "s3cret" not in key
    cache.put(key, Caller("a" * 24, "g", frozenset()))
    assert cache.get(key).group_id == "g"
    cache.forget("a" * 24)
    assert cache.get(key) is None


def test_csv_rows_report_line_field_and_reason():
    text = "id;pac;name;lat;lng\nAB;0000000000000000\n\nZZ;0000000000000000\nAC;1;n\nAD;0000000000000000;n;x\n" \
           "AB;0000000000000000\nAE;0000000000000000;n;1;2;3\n"
    rows, errors = csv_rows("create", text.encode())
    rows, errors = checked_rows("create", rows, errors)
    assert [n for n, _ in rows] == [2]
    assert [(e.row, e.field) for e in errors] == [(4, "id"), (5, "pac"), (6, "lat"), (7, "id"), (8, None)]
    assert "repeats the device of row 2" in errors[3].message


def test_token_end_adds_calendar_months():
    jan31 = 1706659200000  # 2024-01-31T00:00:00Z
    assert token_end(jan31, 0) is None
    assert token_end(jan31, 1) == 1709164800000  # 2024-02-29
    assert token_end(jan31, 12) == 1738281600000  # 2025-01-31
