"""Variables of device events: STATUS takes the service frame's time and its station's position."""
from __future__ import annotations

from callback_language.bindings import advanced_variables, data_variables, event_variables


def test_status_variables():
    event = {"type": "STATUS", "device": "AB", "time": 1_700_000_009_000, "frameTime": 1_700_000_000_500,
             "batt": 3.3, "temp": 21.5, "seqNumber": 4, "station": "A001", "rssi": -100.0, "snr": 9.5}
    v = event_variables(event, {"A001": {"lat": 43.61, "lng": 1.44}})
    assert v == {"time": 1_700_000_000, "device": "AB", "batt": 3.3, "temp": 21.5, "seqNumber": 4,
                 "station": "A001", "rssi": -100.0, "snr": 9.5, "duplicate": False, "avgSnr": "N/A",
                 "lat": 44, "lng": 1}


def test_status_without_a_known_station_has_no_position():
    v = event_variables({"type": "STATUS", "device": "AB", "time": 1000, "station": "FFFF"}, {})
    assert "lat" not in v and v["time"] == 1


def test_acknowledge_variables():
    event = {"type": "ACKNOWLEDGE", "device": "AB", "time": 2000, "infoCode": 0, "infoMessage": "Acked",
             "downlinkAck": True, "downlinkOverusage": False, "station": "A001"}
    assert event_variables(event) == {"time": 2, "device": "AB", "infoCode": 0, "infoMessage": "Acked",
                                      "downlinkAck": True, "downlinkOverusage": False}


def test_repeater_variables_take_every_counter_and_the_frame_time():
    counters = {"whitelistDevices": 3, "repeatedMsg": 40, "unwantedDevices": 2, "unwantedMsg": 7, "wrongMsg": 1,
                "overRegulMsg": 5}
    event = {"type": "REPEATER", "device": "AB", "time": 1_700_000_009_999, "frameTime": 1_700_000_001_999,
             "seqNumber": 9, "station": "A001", "rssi": -101.0, "snr": 8.0, "batt": 3.1, "temp": 20.0,
             "other": "not a variable", **counters}
    assert event_variables(event, {"A001": {"lat": 43.6, "lng": 1.4}}) == {
        "time": 1_700_000_001, "device": "AB", "batt": 3.1, "temp": 20.0, "seqNumber": 9, "station": "A001",
        "rssi": -101.0, "snr": 8.0, **counters}  # no duplicate, avgSnr nor position: those are STATUS's


def test_a_status_event_keeps_its_avg_snr_and_without_frame_time_its_own_time():
    event = {"type": "STATUS", "device": "AB", "time": 1_700_000_009_999, "avgSnr": 12.5, "station": "A001"}
    v = event_variables(event, None)
    assert v == {"time": 1_700_000_009, "device": "AB", "station": "A001", "duplicate": False, "avgSnr": 12.5}


def test_error_and_restored_variables():
    error = {"type": "ERROR", "device": "AB", "time": 1_700_000_060_999, "info": "No message received since x",
             "severity": "ERROR", "lastSeen": 1}
    assert event_variables(error) == {"time": 1_700_000_060, "device": "AB", "info": "No message received since x",
                                      "severity": "ERROR"}
    restored = {"type": "RESTORED", "device": "AB", "time": 1_700_000_100_500, "info": "Messages received again",
                "severity": "INFO", "lastErrorTime": 1_700_000_060_999}
    assert event_variables(restored) == {"time": 1_700_000_100, "device": "AB", "info": "Messages received again",
                                         "severity": "INFO", "lastErrorTime": 1_700_000_060}


def test_sequence_events_are_device_events_with_their_numbers():
    base = {"device": "AB", "time": 1_700_000_000_999, "deviceTypeId": "dt", "groupId": "g",
            "deviceLastSeqnumber": 10, "deviceMessageSeqnumber": 14}
    for kind in ("SEQUENCE_BREAK", "OUT_OF_SEQUENCE"):
        assert event_variables({**base, "type": kind}) == {
            "time": 1_700_000_000, "device": "AB", "sourceType": "DEVICE", "sourceId": "AB", "severity": "WARN",
            "eventType": kind, "deviceTypeId": "dt", "groupId": "g", "deviceLastSeqnumber": 10,
            "deviceMessageSeqnumber": 14}
    assert event_variables({"type": "OTHER", "device": "AB", "time": 0})["severity"] == "INFO"


def test_data_and_advanced_variables():
    message = {"time": 1_700_000_000_999, "device": "AB", "deviceTypeId": "dt", "data": "0a", "seqNumber": 3,
               "snr": 9.0, "rssi": -100.0, "station": "A001", "lat": 43, "lng": 1}
    assert data_variables(message) == {
        "time": 1_700_000_000, "device": "AB", "deviceTypeId": "dt", "data": "0a", "seqNumber": 3, "snr": 9.0,
        "rssi": -100.0, "station": "A001", "duplicate": False, "avgSnr": "N/A", "ack": False,
        "longPolling": False, "lat": 43, "lng": 1}
    assert data_variables({**message, "duplicate": True, "avgSnr": 10.5, "ack": True})["avgSnr"] == 10.5
    advanced = {"device": "AB", "time": 1_700_000_000_999, "data": "0a", "seqNumber": 3, "lqi": "Good",
                "linkQuality": 2, "operatorName": "Backhaul", "countryCode": "250", "duplicates": [],
                "computedLocation": {"status": 20}, "fixedLat": 43.1, "fixedLng": 1.2}
    assert advanced_variables(advanced) == {
        "device": "AB", "time": 1_700_000_000, "data": "0a", "seqNumber": 3, "lqi": "Good", "linkQuality": 2,
        "operatorName": "Backhaul", "countryCode": "250", "duplicates": [], "computedLocation": {"status": 20},
        "fixedLat": 43.1, "fixedLng": 1.2}
    del advanced["fixedLat"], advanced["fixedLng"]
    assert "fixedLat" not in advanced_variables(advanced)
