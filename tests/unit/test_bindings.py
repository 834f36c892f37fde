"""Variables of device events: STATUS takes the service frame's time and its station's position."""
from __future__ import annotations

from callback_language.bindings import event_variables


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
