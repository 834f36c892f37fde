"""Downlinks as a customer sees them, on the real stack and read back through the API (issue 16, point 7).

Each test runs the whole pipeline (ingest, router, delivery, store, dispatch, the simulated stations,
acks) in a worker process, a customer's server, and the API on the same database; it sends frames as
stations would and checks what the customer's server got, what went to the stations, and what the
API shows: the message's `downlinkAnswerStatus` and `cbStatus`. Timing is shortened and bounded: the
BIDIR answer is due 5 s after the uplink (time for a loaded machine's pipeline to call it), the
downlink at its station 8 s after it (it leaves 1 s before, from the best station heard by then), the
device listens 1 s.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from aiohttp import web

from backhaul.replay import replay_undelivered
from backhaul.topics import topic
from callback_language.downlink import InfoCode, info_message, render_direct
from schemas.topics import DOWNLINK_TRANSMISSIONS, DOWNLINKS
from tests.api_support import ApiEnv, check, running_api
from tests.conftest import PIPELINE_ROLES, Pipeline, frame, publish_frames, read_topic, wait_until
from workers.channels.bidir import NOT_A_DOWNLINK

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROLES = (f"{PIPELINE_ROLES},stations,acks,dispatch",)
ENV = {"BACKHAUL_DOWNLINK_ANSWER_S": "5", "BACKHAUL_DOWNLINK_TRANSMIT_S": "8", "BACKHAUL_DOWNLINK_LEAD_S": "1",
       "BACKHAUL_DOWNLINK_LISTEN_S": "1", "BACKHAUL_CALLBACK_TIMEOUT_S": "3", "BACKHAUL_RETRY_SCHEDULE_S": "3",
       "BACKHAUL_RETRY_JITTER": "0", "BACKHAUL_BREAKER_FAILURES": "100"}
DATA = "00112233445566ff"
DIRECT_TEMPLATE = "{tapId}{rssi}{time}"


def bidir(url: str) -> dict:
    return {"id": "bidir", "callback_subtype": 1, "url": url + "/bidir", "http_method": "POST",
            "content_type": "application/json", "downlink_hook": True,
            "body_template": '{"device": "{device}", "ack": {ack}, "seq": {seqNumber}}'}


def acknowledge(url: str) -> dict:
    return {"id": "ack", "callback_subtype": 3, "callback_type": 1, "url": url + "/ack", "http_method": "POST",
            "content_type": "application/json",
            "body_template": '{"device": "{device}", "infoCode": {infoCode}, "downlinkAck": {downlinkAck}}'}


def answering(data: str = DATA):
    """A customer's server: the BIDIR callback answers a downlink, anything else 200."""
    async def answer(request: web.Request, rec: Any) -> web.Response:
        body = orjson.loads(rec.body) if rec.body else {}
        if rec.path == "/bidir" and body.get("ack"):
            return web.json_response({body["device"]: {"downlinkData": data}})
        return web.Response(text="ok")
    return answer


async def acks(pipe: Pipeline, n: int) -> dict[tuple[str, str], dict]:
    """The ACKNOWLEDGE events stored, by (device, uplink id), once there are `n`."""
    rows = await pipe.wait_rows("SELECT device_id, body FROM device_events WHERE type = 'ACKNOWLEDGE'", n, 40)
    return {(r["device_id"], r["body"]["messageId"]): r["body"] for r in rows}


async def messages(api: ApiEnv, device: str, **params: str) -> dict[int, dict]:
    """The device's messages through the API, by seqNumber."""
    listed = check(await api.root.get(f"/devices/{device}/messages", params=params or None), 200)["data"]
    return {m["seqNumber"]: m for m in listed}


async def shown(api: ApiEnv, device: str, seq: int, predicate, what: str, timeout: float = 20.0) -> dict:
    """The message once what the API shows of it satisfies `predicate`."""
    async def check_it():
        m = (await messages(api, device, fields="downlinkAnswerStatus(baseStation(name))")).get(seq)
        return m if m is not None and predicate(m) else None
    return await wait_until(check_it, timeout, what)


def outcome(code: InfoCode, message: str | None = None, **more: Any) -> dict:
    return {"infoCode": int(code), "infoMessage": message or info_message(code),
            "downlinkAck": code == InfoCode.ACKED, "downlinkOverusage": False, **more}


def uplink_id(device: str, seq: int, time_ms: int) -> str:
    return f"{device}-{seq}-{time_ms}"


# Late uplinks ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [1, 0], ids=["callback", "direct"])
async def test_an_ack_uplink_that_arrives_60_s_late_gets_no_downlink(pipeline, receiver, mode):
    receiver.behaviour = answering()
    async with running_api() as (api, root):
        pipe = await pipeline([bidir(receiver.url), acknowledge(receiver.url)], roles=ROLES, env=ENV, devices=2,
                              device_type={"downlink_mode": mode, "downlink_data_string": DIRECT_TEMPLATE},
                              parent_group=root)
        late, on_time = pipe.devices
        station = pipe.stations[0]
        now = int(time.time() * 1000)
        sent_late = frame(late, 1, station=station, ack=True, time_ms=now - 60_000)
        sent_on_time = frame(on_time, 1, station=station, ack=True, rssi=-101.0, time_ms=now)
        await publish_frames([sent_late, sent_on_time])

        events = await acks(pipe, 2)
        refused = events[late, uplink_id(late, 1, now - 60_000)]
        what = "BIDIR answer was due" if mode == 1 else "downlink had to leave for a station"
        assert refused["infoCode"] == InfoCode.NETWORK_ERROR and refused["downlinkAck"] is False
        assert refused["infoMessage"].startswith("Network error: the uplink reached Backhaul 6")
        assert f"after its {what}: no downlink" in refused["infoMessage"], refused["infoMessage"]
        control = events[on_time, uplink_id(on_time, 1, now)]
        assert control["infoCode"] == InfoCode.ACKED, f"the control, in time: {control}"

        grants = [orjson.loads(r.value) for r in await read_topic(topic(DOWNLINKS), expect=1, timeout=10)]
        assert [g["device"] for g in grants] == [on_time], "nothing granted for the late uplink"
        acked_late = [orjson.loads(r.body) for r in await receiver.wait_for(2, 15, "/ack")]
        assert sorted((b["device"], b["infoCode"]) for b in acked_late) == sorted([(late, 4), (on_time, 0)])
        if mode == 1:
            called = [orjson.loads(r.body) for r in receiver.requests if r.path == "/bidir"]
            assert {b["device"] for b in called} == {late, on_time}, "the late uplink's data is still delivered"

        late_shown = await shown(api, late, 1, lambda m: "downlinkAnswerStatus" in m, "the late uplink's outcome")
        assert late_shown["downlinkAnswerStatus"] == outcome(InfoCode.NETWORK_ERROR, refused["infoMessage"])
        expected_data = DATA if mode == 1 else render_direct(DIRECT_TEMPLATE, tap_id=station, rssi=-101.0,
                                                             time_s=now // 1000)
        on_time_shown = await shown(api, on_time, 1, lambda m: m.get("downlinkAnswerStatus", {}).get("infoCode") == 0,
                                    "the downlink transmitted")
        assert on_time_shown["downlinkAnswerStatus"] == outcome(
            InfoCode.ACKED, baseStation={"id": station, "name": f"station {station}"}, data=expected_data), \
            "the downlink the device received, and the station that sent it"


# The station that transmits ------------------------------------------------------------------------------

async def test_a_slower_better_copy_transmits_and_a_direct_downlink_is_rendered_for_it(pipeline, receiver):
    """The first copy is heard at -130 dBm; a better one (-95 dBm) comes after the downlink was granted
    but before it must leave: it transmits, and the DIRECT template is rendered with its tapId and rssi.
    An even better copy after the downlink left is not taken."""
    receiver.behaviour = answering()
    async with running_api() as (api, root):
        # At the station 12 s after the uplink here (leaving at 11 s): time to see the grant PENDING first.
        pipe = await pipeline([acknowledge(receiver.url)], roles=ROLES, env={**ENV, "BACKHAUL_DOWNLINK_TRANSMIT_S": "12"},
                              devices=1, stations=3, parent_group=root,
                              device_type={"downlink_mode": 0, "downlink_data_string": DIRECT_TEMPLATE})
        device = pipe.devices[0]
        weak, better, best = pipe.stations
        now = int(time.time() * 1000)
        await publish_frames([frame(device, 1, station=weak, rssi=-130.0, ack=True, time_ms=now)])

        async def granted():
            return [orjson.loads(r.value) for r in await read_topic(topic(DOWNLINKS), timeout=1)]
        [grant] = await wait_until(granted, 6, "the downlink granted on the first copy")
        assert (grant["station"], grant["template"]) == (weak, DIRECT_TEMPLATE)
        await publish_frames([frame(device, 1, station=better, rssi=-95.0, ack=True, time_ms=now)])
        pending = await shown(api, device, 1, lambda m: "downlinkAnswerStatus" in m, "the grant in the API", 5)
        assert pending["downlinkAnswerStatus"] == outcome(InfoCode.PENDING), "granted, not sent yet: PENDING"

        async def transmitted():
            return [orjson.loads(r.value) for r in await read_topic(topic(DOWNLINK_TRANSMISSIONS), timeout=1)]
        [sent] = await wait_until(transmitted, 16, "the downlink to leave for its station")
        await publish_frames([frame(device, 1, station=best, rssi=-80.0, ack=True, time_ms=now)])

        expected = render_direct(DIRECT_TEMPLATE, tap_id=better, rssi=-95.0, time_s=now // 1000)
        assert (sent["station"], sent["rssi"], sent["data"]) == (better, -95.0, expected)
        assert expected.startswith(better.lower() + "ffa1"), "tapId, then -95 dBm as 2 signed bytes"
        assert now + 11_000 <= sent["leftAt"] < now + 12_000, "it left when it had to, not at the first copy"
        [event] = (await acks(pipe, 1)).values()
        assert (event["infoCode"], event["station"], event["downlinkData"]) == (0, better, expected)
        done = await shown(api, device, 1, lambda m: m["downlinkAnswerStatus"]["infoCode"] == 0, "the ACKNOWLEDGE")
        assert done["downlinkAnswerStatus"] == outcome(
            InfoCode.ACKED, baseStation={"id": better, "name": f"station {better}"}, data=expected)
        assert len(await transmitted()) == 1, "sent once, whatever was heard after"


# A BIDIR answer that cannot be used -----------------------------------------------------------------------------

async def test_a_failed_bidir_shows_as_a_failed_downlink_and_calling_it_again_never_delivers_it(pipeline, receiver):
    """Three devices whose downlink callback fails on its first call: a timeout (the answer comes after
    its deadline), an HTTP 500, an HTTP 500 every time until the callback is given up. The first two are
    retried after the deadline and answer a downlink; the third is replayed and does too. None gives a
    downlink: cbStatus says the downlink failed and that the later calls were not read for one, and the
    message's downlinkAnswerStatus stays NO_ANSWER."""
    calls: dict[str, int] = {}
    failing = {"replayed": True}

    async def behave(request: web.Request, rec: Any) -> web.Response:
        body = orjson.loads(rec.body)
        if rec.path != "/bidir":
            return web.Response(text="ok")
        device = body["device"]
        calls[device] = calls.get(device, 0) + 1
        kind = kinds[device]
        if calls[device] == 1 and kind == "timeout":
            await asyncio.sleep(6)  # the call waits 3 s (the callback timeout) at most
        elif kind == "error" and calls[device] == 1 or kind == "replayed" and failing["replayed"]:
            return web.Response(status=500)
        return web.json_response({device: {"downlinkData": DATA}})

    receiver.behaviour = behave
    async with running_api() as (api, root):
        pipe = await pipeline([bidir(receiver.url), acknowledge(receiver.url)], roles=ROLES, env=ENV, devices=3,
                              device_type={"downlink_mode": 1}, parent_group=root)
        kinds = dict(zip(pipe.devices, ("timeout", "error", "replayed"), strict=True))
        device = {kind: d for d, kind in kinds.items()}
        await publish_frames([frame(d, 1, station=pipe.stations[0], ack=True) for d in pipe.devices])

        await pipe.wait_rows("SELECT 1 FROM callback_attempts WHERE callback_id = 'bidir' AND status = 200", 2, 40)
        await pipe.wait_rows("SELECT 1 FROM undelivered_callbacks WHERE callback_id = 'bidir'", 1, 40)
        failing["replayed"] = False
        assert await replay_undelivered(device=device["replayed"]) == 1
        await pipe.wait_rows("SELECT 1 FROM callback_attempts WHERE callback_id = 'bidir' AND status = 200", 3, 40)

        first_failure = {"timeout": (600, "downlink failed (NO_ANSWER): "),
                         "error": (500, "downlink failed (NO_ANSWER): HTTP 500"),
                         "replayed": (500, "downlink failed (NO_ANSWER): HTTP 500")}
        for kind, d in device.items():
            m = await shown(api, d, 1, lambda m: any(s.get("status") == 200 and s["cbDef"] == "bidir"
                                                     for s in m["rinfos"][0]["cbStatus"]), f"{kind}: the later call")
            statuses = [(s.get("status"), s.get("info")) for s in m["rinfos"][0]["cbStatus"] if s["cbDef"] == "bidir"]
            status, info = first_failure[kind]
            assert statuses[0][0] == status and statuses[0][1].startswith(info), (kind, statuses)
            assert statuses[-1] == (200, NOT_A_DOWNLINK), (kind, statuses)
            assert all(s != 200 for s, _ in statuses[:-1]), (kind, statuses)
            answer = m["downlinkAnswerStatus"]
            assert (answer["infoCode"], answer["downlinkAck"], "data" in answer) == (1, False, False), (kind, answer)
            assert answer["infoMessage"].startswith("No answer: ")

        assert await read_topic(topic(DOWNLINKS), timeout=1) == [], "no downlink granted for any of them"
        acked = [orjson.loads(r.body) for r in receiver.requests if r.path == "/ack"]
        assert sorted((b["device"], b["infoCode"]) for b in acked) == sorted((d, 1) for d in pipe.devices), \
            "one ACKNOWLEDGE each, NO_ANSWER, whatever the later calls answered"


# Overlapping receive windows ------------------------------------------------------------------------------------

async def test_overlapping_receive_windows_of_one_device_give_too_many_requests(pipeline, receiver):
    """Uplinks 1 and 2 are 0.1 s apart (the device listens 1 s: their windows overlap), uplink 3 is 1.5 s
    after uplink 1. Uplink 1's answer comes first and is granted; uplink 2's is refused with
    TOO_MANY_REQUESTS and counts nothing; uplink 3 gets its downlink."""
    async def behave(request: web.Request, rec: Any) -> web.Response:
        body = orjson.loads(rec.body)
        if rec.path == "/bidir" and body["seq"] == 2:
            await asyncio.sleep(0.5)
        return await answering()(request, rec)

    receiver.behaviour = behave
    async with running_api() as (api, root):
        pipe = await pipeline([bidir(receiver.url), acknowledge(receiver.url)], roles=ROLES, env=ENV, devices=1,
                              device_type={"downlink_mode": 1}, parent_group=root)
        device, station = pipe.devices[0], pipe.stations[0]
        now = int(time.time() * 1000)
        times = {1: now, 2: now + 100, 3: now + 1_500}
        await publish_frames([frame(device, seq, station=station, ack=True, time_ms=t) for seq, t in times.items()])

        events = await acks(pipe, 3)
        codes = {seq: events[device, uplink_id(device, seq, t)]["infoCode"] for seq, t in times.items()}
        assert codes == {1: 0, 2: 7, 3: 0}
        second = events[device, uplink_id(device, 2, times[2])]
        assert second["infoMessage"] == info_message(InfoCode.TOO_MANY_REQUESTS) and not second["downlinkOverusage"]
        grants = await pipe.fetch("SELECT id FROM downlink_grants ORDER BY uplink_time")
        assert [g["id"] for g in grants] == [uplink_id(device, s, times[s]) for s in (1, 3)], "the refusal counts nothing"

        m = await shown(api, device, 2, lambda m: "downlinkAnswerStatus" in m, "the refusal in the API")
        assert m["downlinkAnswerStatus"] == outcome(InfoCode.TOO_MANY_REQUESTS)
        statuses = [s.get("info") for s in m["rinfos"][0]["cbStatus"] if s["cbDef"] == "bidir"]
        assert statuses == [f"downlink refused (TOO_MANY_REQUESTS): {info_message(InfoCode.TOO_MANY_REQUESTS)}"]


# Communication state ------------------------------------------------------------------------------------------

async def test_com_state_is_right_from_a_devices_first_message_on(pipeline):
    async with running_api() as (api, root):
        pipe = await pipeline([], devices=2, keep_alive=3600, parent_group=root)
        heard, silent = pipe.devices

        async def com_state(device: str) -> int:
            return check(await api.root.get(f"/devices/{device}"), 200)["comState"]
        assert (await com_state(heard), await com_state(silent)) == (5, 5), "never heard: NOT_SEEN"
        await publish_frames([frame(heard, 1, station=pipe.stations[0])])
        await pipe.wait_rows("SELECT 1 FROM messages", 1)

        async def settled():
            return await com_state(heard) == 1
        await wait_until(settled, 10, "comState OK after the first message")
        assert await com_state(silent) == 5
