"""BIDIR downlinks on the real stack: the downlink callback's answer (data, noData, 204, invalid,
none, late), the `downlinks` grant, its transmission from the best station, ACKNOWLEDGE with the
right infoCode, the daily quota, DIRECT mode, configuration and contract rules.

The downlink timing is shortened (answer due 4 s after the uplink, at the station 7 s after it,
leaving 1 s before; the device listens 0.15 s, so uplinks 0.2 s apart have receive windows apart)."""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiohttp import web

from backhaul.topics import topic
from callback_language.downlink import render_direct
from schemas.topics import DOWNLINK_REPORTS, DOWNLINK_TRANSMISSIONS, DOWNLINKS
from tests.conftest import PIPELINE_ROLES, frame, publish_frames, read_topic, wait_until

pytestmark = pytest.mark.integration

ROLES = (f"{PIPELINE_ROLES},stations,acks,dispatch",)
ENV = {"BACKHAUL_DOWNLINK_ANSWER_S": "4", "BACKHAUL_DOWNLINK_TRANSMIT_S": "7", "BACKHAUL_DOWNLINK_LEAD_S": "1",
       "BACKHAUL_DOWNLINK_LISTEN_S": "0.15", "BACKHAUL_CALLBACK_TIMEOUT_S": "3", "BACKHAUL_RETRY_SCHEDULE_S": "0.3",
       "BACKHAUL_RETRY_JITTER": "0", "BACKHAUL_BREAKER_FAILURES": "100"}
DATA = "00112233445566ff"
BODY = '{"device": "{device}", "ack": {ack}, "seq": {seqNumber}}'


def bidir(url: str, **columns) -> dict:
    return {"id": "bidir", "callback_subtype": 1, "url": url + "/bidir", "http_method": "POST",
            "content_type": "application/json", "body_template": BODY, "downlink_hook": True, **columns}


def acknowledge(url: str) -> dict:
    return {"id": "ack", "callback_subtype": 3, "callback_type": 1, "url": url + "/ack", "http_method": "POST",
            "content_type": "application/json",
            "body_template": '{"device": "{device}", "infoCode": {infoCode}, "infoMessage": "{infoMessage}", '
                             '"downlinkAck": {downlinkAck}, "downlinkOverusage": {downlinkOverusage}}'}


async def acks(pipe, n: int) -> dict[str, list[dict]]:
    """ACKNOWLEDGE events stored, by device, once there are `n`."""
    rows = await pipe.wait_rows("SELECT device_id, body FROM device_events WHERE type = 'ACKNOWLEDGE' ORDER BY time",
                                n, 30)
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["device_id"], []).append(r["body"])
    return out


async def test_callback_downlinks_and_their_acknowledgements(pipeline, receiver):
    attempts: dict[str, int] = {}

    async def answer(request, rec):
        body = orjson.loads(rec.body)
        device = body["device"]
        attempts[device] = attempts.get(device, 0) + 1
        if rec.path == "/ack" or not body["ack"]:
            return web.Response(text="ok")
        kind = roles_of[device]
        if kind == "data":
            return web.json_response({device: {"downlinkData": DATA}})
        if kind == "no-data":
            return web.json_response({device: {"noData": True}})
        if kind == "204":
            return web.Response(status=204)
        if kind == "invalid":
            return web.json_response({device: {"downlinkData": "00112233445566"}})
        if kind == "late":
            await asyncio.sleep(3.5)  # the first call waits 3 s (the callback timeout) at most
            return web.json_response({device: {"downlinkData": DATA}})
        if kind == "error-then-data" and attempts[device] == 1:
            return web.Response(status=500)
        return web.json_response({device: {"downlinkData": DATA}})

    receiver.behaviour = answer
    pipe = await pipeline([bidir(receiver.url), acknowledge(receiver.url)], roles=ROLES, env=ENV, devices=8,
                          device_type={"downlink_mode": 1})
    kinds = ("data", "no-data", "204", "invalid", "late", "error-then-data", "quota", "no-ack")
    roles_of = dict(zip(pipe.devices, kinds, strict=False))
    device = {kind: d for d, kind in roles_of.items()}
    weak, strong = pipe.stations
    frames = [frame(device["data"], 1, station=weak, rssi=-125.0, ack=True),
              frame(device["data"], 1, station=strong, rssi=-95.0, ack=True)]
    frames += [frame(device[k], 1, station=weak, ack=True) for k in kinds[1:6]]
    now = int(time.time() * 1000)  # the quota's uplinks 0.2 s apart: their receive windows do not overlap
    frames += [frame(device["quota"], seq, station=weak, ack=True, time_ms=now + 200 * seq) for seq in range(1, 6)]
    frames += [frame(device["no-ack"], 1, station=weak)]
    await publish_frames(frames)

    expected = {"data": [0], "no-data": [], "204": [], "invalid": [2], "late": [1], "error-then-data": [1],
                "quota": [0, 0, 0, 0, 3], "no-ack": []}
    total = sum(len(c) for c in expected.values())
    by_device = await acks(pipe, total)
    codes = {kind: sorted(e["infoCode"] for e in by_device.get(d, [])) for kind, d in device.items()}
    assert codes == expected
    acked = by_device[device["data"]][0]
    assert (acked["downlinkAck"], acked["downlinkOverusage"], acked["station"]) == (True, False, strong)
    assert "8 bytes" in by_device[device["invalid"]][0]["infoMessage"]
    assert "deadline" in by_device[device["late"]][0]["infoMessage"] or \
        "timeout" in by_device[device["late"]][0]["infoMessage"].lower()
    over = next(e for e in by_device[device["quota"]] if e["infoCode"] == 3)
    assert (over["downlinkAck"], over["downlinkOverusage"]) == (False, True)

    downlinks = [orjson.loads(r.value) for r in await read_topic(topic(DOWNLINKS), expect=5, timeout=10)]
    assert sorted(d["device"] for d in downlinks) == sorted([device["data"]] + [device["quota"]] * 4), \
        "no downlink for a refused, late, retried or empty answer"
    assert {d["data"] for d in downlinks} == {DATA.lower()}
    first = next(d for d in downlinks if d["device"] == device["data"])
    assert first["source"] == "CALLBACK" and first["transmitBy"] > first["createdAt"]
    reports = [orjson.loads(r.value) for r in await read_topic(topic(DOWNLINK_REPORTS), expect=5, timeout=10)]
    report = next(r for r in reports if r["device"] == device["data"])
    assert (report["transmitted"], report["station"], report["data"]) == (True, strong, DATA.lower()), \
        "the station that heard the uplink best transmits"
    sent = [orjson.loads(r.value) for r in await read_topic(topic(DOWNLINK_TRANSMISSIONS), expect=5, timeout=10)]
    assert len(sent) == 5 and {t["id"] for t in sent} == {d["id"] for d in downlinks}, "each grant sent once"
    sent_first = next(t for t in sent if t["device"] == device["data"])
    assert (sent_first["station"], sent_first["rssi"]) == (strong, -95.0)
    assert first["uplinkTime"] + 6_000 <= sent_first["leftAt"] < first["transmitBy"], \
        "it left 1 s before it was due at the station, counted from the uplink"

    def ack_callbacks():
        got = [orjson.loads(r.body) for r in receiver.requests if r.path == "/ack"]
        return got if len(got) >= total else None
    delivered = await wait_until(ack_callbacks, 15, "the ACKNOWLEDGE callbacks")
    assert sorted((b["device"], b["infoCode"]) for b in delivered) == sorted(
        (device[k], c) for k, cs in codes.items() for c in cs)

    bidir_bodies = [orjson.loads(r.body) for r in receiver.requests if r.path == "/bidir"]
    assert {b["ack"] for b in bidir_bodies if b["device"] == device["no-ack"]} == {False}
    assert attempts[device["error-then-data"]] >= 2, "the failed BIDIR callback is retried as a data callback"


async def test_direct_mode_configuration_and_contract_rules(pipeline, receiver):
    template = "{tapId}{rssi}{time}"
    pipe = await pipeline([acknowledge(receiver.url)], roles=ROLES, env=ENV, devices=2,
                          device_type={"downlink_mode": 0, "downlink_data_string": template})
    station = pipe.stations[0]
    group = pipe.ids["group"]
    now = int(time.time() * 1000)
    contracts = await pipe.fetch(
        "INSERT INTO contract_infos(id, name, group_id, order_id, start_time, bidir, max_downlink_frames) "
        "VALUES ('c-uplink', 'uplink only', $1, 'o1', $2, false, 0), ('c-bidir', 'one a day', $1, 'o1', $2, true, 1) "
        "RETURNING id", group, now)
    assert len(contracts) == 2
    pipe.config_records += 2
    await pipe.add_device_type("none", ["A0001"], downlink_mode=2)
    await pipe.add_device_type("no-hook", ["A0002"], [bidir(receiver.url, id="not-hook", downlink_hook=False)],
                               downlink_mode=1)
    await pipe.add_device_type("bad-direct", ["A0003"], downlink_mode=0, downlink_data_string="{tapId}00")
    await pipe.add_device_type("uplink-contract", ["A0004"], downlink_mode=0, downlink_data_string=template,
                               contract_id="c-uplink")
    await pipe.add_device_type("one-a-day", ["A0005"], downlink_mode=0, downlink_data_string=template,
                               contract_id="c-bidir")

    direct = frame(pipe.devices[0], 1, station=station, rssi=-101.4, ack=True)
    now = direct["time"]
    await publish_frames([direct] + [frame(d, 1, station=station, ack=True) for d in ("A0001", "A0002", "A0003",
                                                                                       "A0004")]
                         + [frame("A0005", s, station=station, ack=True, time_ms=now + 200 * s) for s in (1, 2)])
    by_device = await acks(pipe, 7)
    codes = {d: sorted(e["infoCode"] for e in events) for d, events in by_device.items()}
    assert codes == {pipe.devices[0]: [0], "A0001": [8], "A0002": [8], "A0003": [8], "A0004": [6],
                     "A0005": [0, 3]}
    assert "downlinkMode 2" in by_device["A0001"][0]["infoMessage"]
    assert "no downlink BIDIR callback" in by_device["A0002"][0]["infoMessage"]
    assert "8 bytes" in by_device["A0003"][0]["infoMessage"]

    downlinks = [orjson.loads(r.value) for r in await read_topic(topic(DOWNLINKS), expect=2, timeout=10)]
    mine = next(d for d in downlinks if d["device"] == pipe.devices[0])
    assert (mine["source"], mine["template"], "data" in mine) == ("DIRECT", template, False), \
        "granted as a template: rendered for the station chosen to transmit it"
    sent = [orjson.loads(r.value) for r in await read_topic(topic(DOWNLINK_TRANSMISSIONS), expect=2, timeout=10)]
    mine = next(t for t in sent if t["device"] == pipe.devices[0])
    assert mine["data"] == render_direct(template, tap_id=station, rssi=-101.4, time_s=direct["time"] // 1000)
    assert mine["data"].startswith(station.lower() + "ff9b"), "tapId, then rssi -101 as 2 signed bytes"
    assert [orjson.loads(r.body)["device"] for r in receiver.requests if r.path == "/bidir"] == ["A0002"], \
        "DIRECT mode calls no callback"
    acked = await wait_until(lambda: [r for r in receiver.requests if r.path == "/ack"], 10, "the ACKNOWLEDGE callback")
    assert orjson.loads(acked[0].body)["infoCode"] == 0
