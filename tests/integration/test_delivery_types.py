"""Every callback type the stream produces, end to end on the real stack, with its variables.

One device type with a custom grammar, a 3 s keep-alive and CALLBACK downlinks;
one JSON callback per type whose body holds every variable of that type. The
frames: a message heard by two stations asking for a downlink, a STATUS and a
REPEATER service frame, a sequence break, silence past the keep-alive, and a
message that ends the silence.
"""
from __future__ import annotations

import orjson
import pytest
from aiohttp import web

from callback_language.variables import VARIABLES
from ingest import aggregate
from ingest.oob import encode_status
from tests.conftest import PIPELINE_ROLES, at_least, frame, publish_frames, wait_until

pytestmark = pytest.mark.integration

GRAMMAR = "temp::int:8 humidity::uint:16:little-endian"
CUSTOM = ("customData#temp", "customData#humidity")
DOWNLINK = "0102030405060708"
# subtype, callback type, kind of the variables, extra variables
TYPES = {
    "uplink": (0, 0, "DATA_UPLINK", CUSTOM),
    "bidir": (1, 0, "DATA_BIDIR", CUSTOM),
    "status": (2, 1, "STATUS", ()),
    "acknowledge": (3, 1, "ACKNOWLEDGE", ()),
    "repeater": (4, 1, "REPEATER", ()),
    "advanced": (5, 1, "DATA_ADVANCED", CUSTOM),
    "error": (6, 2, "ERROR", ()),
    "event": (7, 3, "EVENT", ()),
}


def json_body(kind: str, extra: tuple[str, ...]) -> str:
    return "{" + ", ".join(f'"{name}": {{{name}}}' for name in (*sorted(VARIABLES[kind]), *extra)) + "}"


def callbacks(url: str) -> list[dict]:
    return [{"id": f"cb-{name}", "callback_subtype": subtype, "callback_type": ctype, "url": f"{url}/{name}",
             "http_method": "POST", "content_type": "application/json", "body_template": json_body(kind, extra),
             "downlink_hook": name == "bidir"}
            for name, (subtype, ctype, kind, extra) in TYPES.items()]


async def test_every_callback_type_with_its_variables(pipeline, receiver):
    async def behave(request, rec):
        if rec.path == "/bidir":
            return web.json_response({orjson.loads(rec.body)["device"]: {"downlinkData": DOWNLINK}})
        return web.Response(text="ok")

    receiver.behaviour = behave
    # The downlink leaves for its station 2 s after the uplink (at the station 3 s after it), not 19 s.
    pipe = await pipeline(callbacks(receiver.url), roles=(f"{PIPELINE_ROLES},stations,acks,dispatch",),
                          env={"BACKHAUL_ADVANCED_WINDOW_S": "2", "BACKHAUL_DOWNLINK_TRANSMIT_S": "3"}, keep_alive=3,
                          payload_config=GRAMMAR,
                          device_type={"downlink_mode": 1})
    device = pipe.devices[0]
    near, far = pipe.network.stations[0], pipe.network.stations[1]
    dev = pipe.network.devices[0]

    def bodies(name: str, n: int = 1) -> list[dict] | None:
        return at_least([orjson.loads(r.body) for r in receiver.requests if r.path == f"/{name}"], n)

    first = frame(device, 10, station=near.id, data="f41027", rssi=-90.0, snr=20.0, ack=True)
    second = frame(device, 10, station=far.id, data="f41027", rssi=-110.5, snr=8.5, ack=True,
                   time_ms=first["time"] + 40)
    status = frame(device, 11, station=near.id, data=encode_status(3.3, 21.5), oob=True, rssi=-95.0, snr=15.0)
    repeater = frame(device, 12, station=far.id, oob=True, data="020ce4" + "010203040506")
    await publish_frames([first, second, status, repeater])

    uplink = (await wait_until(lambda: bodies("uplink"), 15, "the DATA UPLINK callback"))[0]
    expected_uplink = {
        "time": first["time"] // 1000, "device": device, "deviceTypeId": pipe.ids["deviceType"], "data": "f41027",
        "seqNumber": 10, "snr": 20.0, "rssi": -90.0, "station": near.id, "duplicate": False, "avgSnr": "N/A",
        "lat": round(near.lat), "lng": round(near.lng), "customData#temp": "-12", "customData#humidity": "10000"}
    assert uplink == expected_uplink
    bidir = (await wait_until(lambda: bodies("bidir"), 15, "the DATA BIDIR callback"))[0]
    assert bidir == {**expected_uplink, "ack": True, "longPolling": False}

    assert (await wait_until(lambda: bodies("status"), 15, "the STATUS callback"))[0] == {
        "device": device, "time": status["time"] // 1000, "temp": 21.5, "batt": 3.3, "seqNumber": 11,
        "station": near.id, "snr": 15.0, "rssi": -95.0, "avgSnr": "N/A", "lat": round(near.lat),
        "lng": round(near.lng), "duplicate": False}
    assert (await wait_until(lambda: bodies("repeater"), 15, "the REPEATER callback"))[0] == {
        "time": repeater["time"] // 1000, "device": device, "batt": 3.3, "whitelistDevices": 1, "repeatedMsg": 2,
        "unwantedDevices": 3, "unwantedMsg": 4, "wrongMsg": 5, "overRegulMsg": 6}

    ack = (await wait_until(lambda: bodies("acknowledge"), 15, "the ACKNOWLEDGE callback"))[0]
    assert ack["device"] == device and isinstance(ack["time"], int)
    assert (ack["infoCode"], ack["downlinkAck"], ack["downlinkOverusage"]) == (0, True, False)
    assert ack["infoMessage"].startswith("Acked")

    advanced = (await wait_until(lambda: bodies("advanced"), 15, "the DATA_ADVANCED callback"))[0]
    duplicates = [{"bsId": near.id, "rssi": -90.0, "snr": 20.0, "nbRep": 1},
                  {"bsId": far.id, "rssi": -110.5, "snr": 8.5, "nbRep": 1}]
    assert advanced == {
        "device": device, "time": first["time"] // 1000, "data": "f41027", "seqNumber": 10, "lqi": "Excellent",
        "linkQuality": 3, "fixedLat": round(dev.lat, 5), "fixedLng": round(dev.lng, 5), "operatorName": "Backhaul",
        "countryCode": "000", "duplicates": duplicates,
        "computedLocation": aggregate.computed_location([(near.id, -90.0), (far.id, -110.5)],
                                                        {s.id: {"lat": s.lat, "lng": s.lng}
                                                         for s in pipe.network.stations}),
        "customData#temp": "-12", "customData#humidity": "10000"}
    assert isinstance(advanced["duplicates"], list) and isinstance(advanced["computedLocation"], dict), \
        "object variables are inserted as JSON, not as strings"

    await publish_frames([frame(device, 14, station=near.id, data="0a0000")])
    event = (await wait_until(lambda: bodies("event"), 15, "the EVENT callback"))[0]
    assert event == {
        "time": event["time"], "sourceType": "DEVICE", "sourceId": device, "severity": "WARN",
        "eventType": "SEQUENCE_BREAK", "deviceTypeId": pipe.ids["deviceType"], "groupId": pipe.ids["group"],
        "deviceLastSeqnumber": 10, "deviceMessageSeqnumber": 14}

    error = (await wait_until(lambda: bodies("error"), 15, "the keep-alive ERROR callback"))[0]
    assert error["device"] == device and error["severity"] == "ERROR"
    assert error["info"].startswith("No message received since ")
    assert set(error) == {"time", "device", "info", "severity"}

    await publish_frames([frame(device, 15, station=near.id, data="0b0000")])
    restored = (await wait_until(lambda: bodies("error", 2), 15, "the RESTORED event on the ERROR callback"))[1]
    assert restored["device"] == device and restored["severity"] == "INFO"
    assert restored["info"].startswith("Messages received again after ")
    assert bodies("uplink", 3) and bodies("bidir", 3)
    assert len(bodies("acknowledge")) == 1, "only the uplink that asked for a downlink gets an ACKNOWLEDGE"
