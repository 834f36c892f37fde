"""BIDIR answers, DIRECT templates, info codes, downlink routing and ACKNOWLEDGE events."""
from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callback_language.downlink import DownlinkRoute, InfoCode, ack_event, downlink_route, info_message, render_direct
from workers.channels.bidir import DownlinkAnswer, parse_bidir_answer
from workers.downlink_gate import utc_day

JSON = "application/json"


def answer(doc) -> bytes:
    return json.dumps(doc).encode()


# BIDIR answers

def test_204_is_no_data():
    assert parse_bidir_answer("1A2B3C", 204, None, b"") == DownlinkAnswer("no_data")


def test_downlink_data():
    got = parse_bidir_answer("1A2B3C", 200, JSON, answer({"1A2B3C": {"downlinkData": "DEADBEEFCAFEBABE"}}))
    assert got == DownlinkAnswer("data", data_hex="deadbeefcafebabe")


def test_no_data_flag():
    assert parse_bidir_answer("1A2B3C", 200, JSON, answer({"1A2B3C": {"noData": True}})).kind == "no_data"


def test_device_key_is_case_insensitive_and_ignores_leading_zeros():
    body = answer({"001a2b3c": {"downlinkData": "0011223344556677"}})
    assert parse_bidir_answer("1A2B3C", 200, JSON, body).data_hex == "0011223344556677"


def test_batch_answer_other_devices_ignored():
    body = answer({"AAAA": {"downlinkData": "zz"}, "BBBB": {"downlinkData": "0102030405060708"}, "extra": 1})
    assert parse_bidir_answer("bbbb", 200, JSON, body) == DownlinkAnswer("data", data_hex="0102030405060708")


def test_content_type_is_not_checked():
    body = answer({"AB": {"downlinkData": "0102030405060708"}})
    assert parse_bidir_answer("AB", 200, "text/plain", body).kind == "data"


@pytest.mark.parametrize("status, content_type, body, reason", [
    (500, JSON, b"", "HTTP status 500"),
    (201, JSON, answer({"AB": {"noData": True}}), "HTTP status 201"),
    (200, JSON, b"", "empty body"),
    (200, "text/html", b"<html>ok</html>", "not JSON"),
    (200, JSON, b"\xff\xfe", "not JSON"),
    (200, JSON, answer([1, 2]), "JSON object"),
    (200, JSON, answer({"CD": {"noData": True}}), "no entry for device AB"),
    (200, JSON, answer({"AB": {"noData": True}, "ab": {"noData": True}}), "more than one entry"),
    (200, JSON, answer({"AB": "0102030405060708"}), "must be a JSON object"),
    (200, JSON, answer({"AB": {}}), "neither downlinkData nor noData"),
    (200, JSON, answer({"AB": {"noData": False}}), "neither downlinkData nor noData"),
    (200, JSON, answer({"AB": {"noData": True, "downlinkData": "0102030405060708"}}), "both"),
    (200, JSON, answer({"AB": {"downlinkData": "01020304"}}), "exactly 8 bytes"),
    (200, JSON, answer({"AB": {"downlinkData": "0x02030405060708"}}), "not hexadecimal"),
    (200, JSON, answer({"AB": {"downlinkData": 1234}}), "must be a string"),
])
def test_invalid_answers_say_why(status, content_type, body, reason):
    got = parse_bidir_answer("AB", status, content_type, body)
    assert got.kind == "invalid" and got.data_hex is None
    assert reason in got.reason


@given(st.binary(min_size=8, max_size=8), st.booleans())
def test_any_8_bytes_round_trip(payload, upper):
    hex_data = payload.hex().upper() if upper else payload.hex()
    got = parse_bidir_answer("C0FFEE", 200, JSON, answer({"C0FFEE": {"downlinkData": hex_data}}))
    assert got == DownlinkAnswer("data", data_hex=payload.hex())
    assert bytes.fromhex(got.data_hex) == payload


@given(st.binary(max_size=64).filter(lambda b: len(b) != 8))
def test_any_other_length_is_invalid(payload):
    got = parse_bidir_answer("C0FFEE", 200, JSON, answer({"C0FFEE": {"downlinkData": payload.hex()}}))
    assert got.kind == "invalid"
    assert "exactly 8 bytes" in got.reason


@given(st.text(alphabet="0123456789abcdef", min_size=1, max_size=40).filter(lambda s: len(s) % 2 == 1))
def test_odd_hex_lengths_are_invalid(hex_data):
    assert parse_bidir_answer("AB", 200, JSON, answer({"AB": {"downlinkData": hex_data}})).kind == "invalid"


# Info codes

def test_info_codes():
    assert [c.value for c in InfoCode] == list(range(9))
    assert InfoCode.OVERRUN_ERROR == 3 and InfoCode.INVALID_CONFIGURATION == 8
    assert all(info_message(code) for code in InfoCode)
    assert info_message(0).startswith("Acked")
    assert "quota" in info_message(InfoCode.OVERRUN_ERROR)
    with pytest.raises(ValueError, match="infoCode 9"):
        info_message(9)


# DIRECT templates

def test_render_direct_byte_widths():
    got = render_direct("{time}{tapId}{rssi}", tap_id="1A2B", rssi=-120.4, time_s=1_700_000_000)
    assert got == "6553f100" + "1a2b" + "ff88"


def test_render_direct_literal_hex_and_padding():
    assert render_direct("{tapId}00AABBCCDDEE", tap_id="7", rssi=0, time_s=0) == "000700aabbccddee"
    assert render_direct("{rssi}{rssi}{rssi}{rssi}", tap_id="0", rssi=17, time_s=0) == "0011" * 4


@given(st.integers(-32768, 32767), st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF))
def test_render_direct_decodes_back(rssi, time_s, station):
    got = bytes.fromhex(render_direct("{time}{tapId}{rssi}", tap_id=f"{station:X}", rssi=rssi, time_s=time_s))
    assert int.from_bytes(got[0:4], "big") == time_s
    assert int.from_bytes(got[4:6], "big") == station
    assert int.from_bytes(got[6:8], "big", signed=True) == rssi


@pytest.mark.parametrize("template, kwargs, reason", [
    ("{time}{tapId}", {}, "12 hex characters"),
    ("{time}{tapId}{rssi}00", {}, "18 hex characters"),
    ("{time}{tapId}zzzz", {}, "not hexadecimal"),
    ("{time}{device}", {}, "unknown variable {device}"),
    ("{time}{tapId}{rssi}", {"tap_id": "12345"}, "tapId"),
    ("{time}{tapId}{rssi}", {"tap_id": "GG"}, "tapId"),
    ("{time}{tapId}{rssi}", {"rssi": 40000}, "rssi"),
    ("{time}{tapId}{rssi}", {"rssi": float("nan")}, "rssi"),
    ("{time}{tapId}{rssi}", {"time_s": 2**32}, "time"),
    ("{time}{tapId}{rssi}", {"time_s": -1}, "time"),
])
def test_render_direct_errors_name_the_reason(template, kwargs, reason):
    args = {"tap_id": "1A2B", "rssi": -100, "time_s": 1_700_000_000, **kwargs}
    with pytest.raises(ValueError, match=reason.replace("{", r"\{").replace("}", r"\}")):
        render_direct(template, **args)


def test_utc_day():
    assert utc_day(0) == date(1970, 1, 1)
    assert utc_day(1_700_000_000) == date(2023, 11, 14)
    assert utc_day(86400 - 0.001) == date(1970, 1, 1)


# Routing

def hook(**columns) -> dict:
    return {"id": "cb", "enabled": True, "downlink_hook": True, "callback_subtype": 1, "channel": "URL", **columns}


def test_callback_mode_uses_the_one_downlink_callback():
    callbacks = [hook(), hook(id="plain", downlink_hook=False), {"id": "uplink", "callback_subtype": 0,
                                                                   "enabled": True}]
    assert downlink_route({"downlink_mode": 1}, callbacks) == DownlinkRoute("callback", callback_id="cb")
    assert downlink_route({"downlink_mode": 1}, [hook(channel="BATCH_URL")]).callback_id == "cb"


@pytest.mark.parametrize("callbacks, reason", [
    ([], "callback downlink mode but no downlink BIDIR callback"),
    ([hook(enabled=False)], "callback downlink mode but no downlink BIDIR callback"),
    ([hook(channel="EMAIL")], "callback downlink mode but no downlink BIDIR callback"),
    ([hook(callback_subtype=0)], "callback downlink mode but no downlink BIDIR callback"),
    ([hook(), hook(id="other")], "more than one downlink BIDIR callback"),
])
def test_callback_mode_without_exactly_one_usable_hook_is_invalid(callbacks, reason):
    route = downlink_route({"downlink_mode": 1}, callbacks)
    assert (route.mode, route.code) == ("refused", InfoCode.INVALID_CONFIGURATION)
    assert reason in (route.reason or info_message(route.code))


@pytest.mark.parametrize("device_type", [{"downlink_mode": 2}, {"downlink_mode": 3}, None])
def test_modes_without_downlinks_are_invalid(device_type):
    assert downlink_route(device_type, [hook()]).code == InfoCode.INVALID_CONFIGURATION


def test_direct_mode_needs_no_callback():
    assert downlink_route({"downlink_mode": 0}, []) == DownlinkRoute("direct")


def test_ack_event_one_per_uplink():
    event = ack_event("AB12", "AB12-7-1000", InfoCode.OVERRUN_ERROR, device_type_id="t", group_id="g", now_ms=5,
                      registration_id=42)
    assert event == {"id": "AB12:ACKNOWLEDGE:AB12-7-1000", "type": "ACKNOWLEDGE", "device": "AB12",
                     "deviceTypeId": "t", "groupId": "g", "registrationId": 42, "time": 5,
                     "messageId": "AB12-7-1000", "infoCode": 3,
                     "infoMessage": info_message(InfoCode.OVERRUN_ERROR), "downlinkAck": False,
                     "downlinkOverusage": True}
    acked = ack_event("AB12", "m", InfoCode.ACKED, device_type_id=None, group_id=None, now_ms=5, downlink_ack=True)
    assert (acked["downlinkAck"], acked["downlinkOverusage"], acked["infoCode"]) == (True, False, 0)
    assert ack_event("AB12", "m", InfoCode.NO_ANSWER, device_type_id=None, group_id=None, now_ms=5,
                     reason="No answer: HTTP 500")["infoMessage"] == "No answer: HTTP 500"
