"""The simulated stations: the station the dispatcher chose transmits, once; late or stationless
transmissions are not sent."""
from __future__ import annotations

import time
from types import SimpleNamespace

import orjson
from aiokafka import TopicPartition

from backhaul.topics import topic
from schemas.topics import DOWNLINK_TRANSMISSIONS
from simulator.stations import StationsStage


def stage() -> StationsStage:
    view = SimpleNamespace(stations={"A001": {}, "A002": {}, "A003": {}})
    return StationsStage(view)


def batch(transmissions: list[dict]) -> dict:
    return {TopicPartition(topic(DOWNLINK_TRANSMISSIONS), 0): [SimpleNamespace(value=orjson.dumps(t))
                                                               for t in transmissions]}


def transmission(**fields) -> dict:
    now = int(time.time() * 1000)
    return {"id": "m1", "device": "AB", "messageId": "m1", "data": "00" * 8, "station": "A002", "rssi": -95.0,
            "uplinkTime": now - 19_000, "transmitBy": now + 60_000, "leftAt": now, **fields}


def reports(out) -> list[dict]:
    return [orjson.loads(o.value) for o in out]


def test_the_chosen_station_transmits_and_reports_it():
    sent = transmission()
    [report] = reports(stage().process(batch([sent])))
    assert (report["transmitted"], report["station"], report["reason"], report["data"]) == (True, "A002", None,
                                                                                           "00" * 8)
    assert report["id"] == "m1" and report["uplinkTime"] == sent["uplinkTime"]


def test_a_transmission_read_again_is_transmitted_once():
    s = stage()
    assert len(reports(s.process(batch([transmission(), transmission()])))) == 1
    assert reports(s.process(batch([transmission()]))) == []


def test_late_or_without_a_registered_station_is_not_transmitted():
    late, nowhere, none = reports(stage().process(batch([
        transmission(transmitBy=1), transmission(id="x", station="FFFF"), transmission(id="y", station=None)])))
    assert not late["transmitted"] and "after it was due there" in late["reason"]
    assert not nowhere["transmitted"] and "no registered station" in nowhere["reason"]
    assert not none["transmitted"] and "(None)" in none["reason"]
