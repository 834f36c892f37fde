"""The router stage alone (router/stage.py), in this process, on the real Kafka.

Its contract: it reads `messages`, `messages.advanced` and `device-events`; for each record it writes
one delivery per ENABLED callback of the device's type whose subtype wants the record (id
`<record id>/<callback id>`, rendered), an ACKNOWLEDGE event when an uplink's downlink cannot be
routed, nothing for a duplicate reception or an unknown device; it commits a batch's offsets once
its outputs are written, and only then; a repeated record gives the same delivery ids again, an
older record after a newer one is routed as it comes.
"""
from __future__ import annotations

import time

import pytest

from backhaul import db
from backhaul.config_relay import publish_pending
from backhaul.kafka import make_producer
from router.stage import RouterStage
from schemas.deliveries import Delivery, decode_delivery
from schemas.delivery_results import decode_delivery_result
from schemas.device_events import decode_device_event
from schemas.topics import DELIVERIES, DELIVERY_RESULTS, DEVICE_EVENTS, MESSAGES, MESSAGES_ADVANCED
from tests.conftest import wait_until
from tests.stages.stage_records import (
    T0,
    advanced,
    duplicate,
    error_event,
    keyed_advanced,
    keyed_event,
    keyed_message,
    message,
)
from tests.stages.stage_support import commits, configured, ends, publish, records_of, running, wait_all_committed

pytestmark = pytest.mark.integration

GROUP = "backhaul-router"
INPUTS = (MESSAGES, MESSAGES_ADVANCED, DEVICE_EVENTS)
D1, D2, D3 = "5B0001", "5B0002", "5B0003"
UP = {"id": "up", "http_method": "GET", "url": "http://127.0.0.1:9/up?d={device}&s={seqNumber}&x={data}"}
OFF = {"id": "off", "http_method": "GET", "url": "http://127.0.0.1:9/off?d={device}", "enabled": False}
ADV = {"id": "adv", "callback_type": 1, "callback_subtype": 5, "http_method": "POST",
       "url": "http://127.0.0.1:9/adv", "content_type": "text/plain", "body_template": "{device} {lqi}"}
ERR = {"id": "err", "callback_type": 2, "callback_subtype": 6, "http_method": "GET",
       "url": "http://127.0.0.1:9/err?d={device}"}
MAIL = {"id": "mail", "channel": "EMAIL", "recipient": "ops+{device}@example.com", "subject": "seq {seqNumber}",
        "message": "data {data}"}


def by_id(deliveries: list[Delivery]) -> dict[str, Delivery]:
    found = {d["id"]: d for d in deliveries}
    assert len(found) == len(deliveries), f"one delivery per id: {sorted(d['id'] for d in deliveries)}"
    return found


async def test_each_record_goes_to_its_enabled_callbacks_exactly_and_the_batch_is_committed_after(isolated):
    async with configured([D1, D2, D3], [UP, OFF, ADV, ERR, MAIL]) as conf:
        first = message(conf, D1, 7)
        second = duplicate(conf, first, "5A02", rssi=-110.0)
        aggregate = advanced(conf, first)
        error = error_event(conf, D2, deadline_ms=T0 + 60_000, last_seen_ms=T0)
        stranger = {**message(conf, D1, 8), "device": "5BFFFF", "deviceTypeId": None}  # not in the view
        await publish(MESSAGES, [keyed_message(m) for m in (first, second, stranger)])
        await publish(MESSAGES_ADVANCED, [keyed_advanced(aggregate)])
        await publish(DEVICE_EVENTS, [keyed_event(error)])
        assert [await commits(GROUP, name) for name in INPUTS] == [{}, {}, {}], "nothing committed before it runs"

        before = int(time.time() * 1000)
        async with running(RouterStage(conf.view)):
            await wait_all_committed(GROUP, INPUTS)
        after = int(time.time() * 1000)
        for name in INPUTS:
            assert await commits(GROUP, name) == {p: e for p, e in (await ends(name)).items() if e}, name

        out = by_id(await records_of(DELIVERIES, decode_delivery))
        mid, adv_id, err_id = first["id"], aggregate["id"], error["id"]
        assert sorted(out) == sorted([f"{mid}/up", f"{mid}/mail", f"{adv_id}/adv", f"{err_id}/err"]), \
            "the disabled callback, the duplicate reception and the unknown device give nothing"
        assert all(before <= d["createdAt"] <= after for d in out.values())
        head = {"deviceTypeId": conf.device_type, "groupId": conf.group, "downlink": False}
        up = out[f"{mid}/up"]
        assert {k: v for k, v in up.items() if k != "createdAt"} == {
            **head, "id": f"{mid}/up", "callbackId": "up", "kind": "DATA_UPLINK", "channel": "URL",
            "recordId": mid, "messageId": mid, "device": D1, "registrationId": conf.registrations[D1],
            "origin": T0, "messageTime": T0, "data": "c0ffee", "snr": 12.5,
            "variables": {"time": T0 // 1000, "device": D1, "deviceTypeId": conf.device_type, "data": "c0ffee",
                          "seqNumber": 7, "snr": 12.5, "rssi": -100.0, "station": "5A01", "duplicate": False,
                          "avgSnr": 11.0, "ack": False, "longPolling": False, "deliveryId": f"{mid}/up"},
            "request": {"method": "GET", "url": f"http://127.0.0.1:9/up?d={D1}&s=7&x=c0ffee", "headers": {},
                        "body": None, "contentType": None}}
        assert out[f"{mid}/mail"]["email"] == {"recipient": f"ops+{D1}@example.com", "subject": "seq 7",
                                               "body": "data c0ffee"}
        assert (out[f"{mid}/mail"]["kind"], out[f"{mid}/mail"]["channel"]) == ("DATA_UPLINK", "EMAIL")
        adv = out[f"{adv_id}/adv"]
        assert (adv["kind"], adv["recordId"], adv["messageId"], adv["origin"], adv["messageTime"]) == (
            "DATA_ADVANCED", adv_id, mid, T0 + 25_000, T0), "DATA_ADVANCED: its message's id, its window's end"
        assert adv["request"]["body"] == f"{D1} Excellent"
        assert adv["variables"]["duplicates"] == aggregate["duplicates"]
        assert adv["variables"]["computedLocation"] == aggregate["computedLocation"]
        err = out[f"{err_id}/err"]
        assert (err["kind"], err["recordId"], err["messageId"], err["device"], err["origin"]) == (
            "ERROR", err_id, None, D2, T0 + 60_000)
        assert err["request"]["url"] == f"http://127.0.0.1:9/err?d={D2}"
        assert err["variables"]["info"] == error["info"] and err["variables"]["severity"] == "ERROR"
        assert await records_of(DELIVERY_RESULTS, decode_delivery_result) == []
        assert await records_of(DEVICE_EVENTS, decode_device_event) == [error], "no event of its own"


BIDIR_OFF = {"id": "bidir", "callback_subtype": 1, "downlink_hook": True, "enabled": False, "http_method": "GET",
             "url": "http://127.0.0.1:9/bidir?d={device}"}


async def test_a_disabled_callback_is_not_routed_until_it_is_enabled(isolated):
    """The issue's example: a disabled callback is not routed (nor does a disabled BIDIR callback
    answer a downlink request); enabled through the configuration, it is, from then on."""
    async with configured([D1], [UP, OFF, BIDIR_OFF], downlink_mode=1) as conf:
        asking = message(conf, D1, 1, ack=True)
        await publish(MESSAGES, [keyed_message(asking)])
        async with running(RouterStage(conf.view, clock=lambda: T0 / 1000 + 1.5)):
            await wait_all_committed(GROUP, INPUTS)
            routed = by_id(await records_of(DELIVERIES, decode_delivery))
            assert sorted(routed) == [f"{asking['id']}/up"], "neither the disabled callback nor the disabled BIDIR"
            [ack] = await records_of(DEVICE_EVENTS, decode_device_event)
            assert (ack["id"], ack["type"], ack["messageId"], ack["infoCode"], ack["downlinkAck"]) == (
                f"{D1}:ACKNOWLEDGE:{asking['id']}", "ACKNOWLEDGE", asking["id"], 8, False), \
                "no enabled downlink callback: the downlink is refused as INVALID_CONFIGURATION"

            conn = await db.connect()
            producer = make_producer()
            await producer.start()
            try:
                await conn.execute("UPDATE callbacks SET enabled = true WHERE id = ANY($1)", ["off", "bidir"])
                await publish_pending(conn, producer)
            finally:
                await producer.stop()
                await conn.close()
            await wait_until(lambda: conf.view.callbacks["off"]["enabled"] and conf.view.callbacks["bidir"]["enabled"],
                             10, "the view to see the callbacks enabled")
            later = message(conf, D1, 2, time_ms=T0 + 1000, ack=True)
            await publish(MESSAGES, [keyed_message(later)])
            await wait_all_committed(GROUP, INPUTS)
        routed = by_id(await records_of(DELIVERIES, decode_delivery))
        assert sorted(routed) == sorted([f"{asking['id']}/up", f"{later['id']}/up", f"{later['id']}/off",
                                         f"{later['id']}/bidir"])
        assert routed[f"{later['id']}/bidir"]["downlink"] is True and not routed[f"{later['id']}/up"]["downlink"]
        assert len(await records_of(DEVICE_EVENTS, decode_device_event)) == 1, "routed to its callback: no refusal"


async def test_repeated_and_older_records_across_a_restart(isolated):
    """A record read again gives the same delivery id (the worker and the store de-duplicate on it);
    an older message after a newer one is routed in the order it came; records published while the
    stage is stopped are not committed, and after a restart only they are read."""
    async with configured([D1], [UP]) as conf:
        newer, older = message(conf, D1, 9, time_ms=T0 + 9000), message(conf, D1, 8, time_ms=T0 + 8000)
        async with running(RouterStage(conf.view)):
            await publish(MESSAGES, [keyed_message(newer), keyed_message(older)])
            await wait_all_committed(GROUP, INPUTS)
        done = await commits(GROUP, MESSAGES)
        await publish(MESSAGES, [keyed_message(newer)])  # the same record again (a replay upstream)
        assert await commits(GROUP, MESSAGES) == done, "a record not handled yet is not committed"
        assert len(await records_of(DELIVERIES, decode_delivery)) == 2

        async with running(RouterStage(conf.view)):
            await wait_all_committed(GROUP, INPUTS)
        routed = await records_of(DELIVERIES, decode_delivery)
        assert [d["id"] for d in routed] == [f"{newer['id']}/up", f"{older['id']}/up", f"{newer['id']}/up"], \
            "input order kept; the restart read only the new record; the repeat has the same id"
        first, again = routed[0], routed[2]
        assert {k: v for k, v in first.items() if k != "createdAt"} == \
            {k: v for k, v in again.items() if k != "createdAt"}, "the same delivery, routed again"
        assert routed[1]["variables"]["seqNumber"] == 8 and routed[1]["messageTime"] == T0 + 8000
