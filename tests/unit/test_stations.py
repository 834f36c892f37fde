"""The simulated stations: the best receiving station transmits; late or stationless downlinks are not sent."""
from __future__ import annotations

import time
from types import SimpleNamespace

import orjson
from aiokafka import TopicPartition

from backhaul.topics import topic
from schemas.frames import Frame
from schemas.messages import Message, duplicate_reception, first_reception
from schemas.topics import DOWNLINKS, MESSAGES
from simulator.stations import StationsStage


def stage() -> StationsStage:
    view = SimpleNamespace(stations={"A001": {}, "A002": {}, "A003": {}})
    return StationsStage(view)


def batch(messages: list[dict] = (), downlinks: list[dict] = ()) -> dict:
    records = lambda values: [SimpleNamespace(value=orjson.dumps(v)) for v in values]  # noqa: E731
    return {TopicPartition(topic(DOWNLINKS), 0): records(downlinks),
            TopicPartition(topic(MESSAGES), 0): records(messages)}


def downlink(**fields) -> dict:
    return {"id": "m1", "device": "AB", "messageId": "m1", "data": "00" * 8, "station": "A001",
            "transmitBy": int(time.time() * 1000) + 20_000, **fields}


def reception(station: str, rssi: float, *, first: bool = False) -> Message:
    """Message m1 as `station` heard it (its first reception, or a duplicate)."""
    frame = Frame(station, "AB", 1, 1764165600000, "", rssi, 10.0, 868_130_000, 1, True, False)
    if first:
        return first_reception("m1", frame, device_type_id=None, group_id=None, registration_id=None,
                               avg_snr="N/A", over_quota=False, ingested_at_ms=1764165600000)
    return duplicate_reception("m1", frame, device_type_id=None, group_id=None, registration_id=None)


def reports(out) -> list[dict]:
    return [orjson.loads(o.value) for o in out]


def test_the_station_that_heard_best_transmits():
    s = stage()
    heard = [reception("A001", -120.0, first=True), reception("A002", -90.0), reception("A003", -100.0)]
    [report] = reports(s.process(batch(heard, [downlink()])))
    assert (report["transmitted"], report["station"], report["reason"]) == (True, "A002", None)
    assert report["id"] == "m1" and report["data"] == "00" * 8


def test_the_named_station_when_no_reception_is_known():
    [report] = reports(stage().process(batch([], [downlink(messageId="unknown")])))
    assert (report["transmitted"], report["station"]) == (True, "A001")


def test_late_or_without_a_registered_station_is_not_transmitted():
    s = stage()
    late, nowhere = reports(s.process(batch([], [downlink(transmitBy=1), downlink(station="FFFF", messageId="x")])))
    assert not late["transmitted"] and "stopped listening" in late["reason"]
    assert not nowhere["transmitted"] and "no registered station" in nowhere["reason"]
