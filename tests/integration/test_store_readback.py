"""Everything the store writes, read back THROUGH THE API, and written again (a replay).

The store stage runs alone in this process; the records it reads are built with `schemas/` for
devices, a device type and callbacks made through the API. Each test writes records, reads what
the API shows (device messages with their receptions and `cbStatus`, the device's radio fields,
the undelivered callbacks, the callback's `dead` flag), publishes the same records again and reads
again: nothing is shown twice, every field is there, a replay erases nothing that should be kept
(DATA_ADVANCED details, attempts), and what should be replaced is (a send's "sending" state by its
answer, the first reception by the aggregate).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from backhaul import db
from schemas import delivery_results as results
from schemas.dead_letters import DeadLetter
from schemas.deliveries import Delivery, http_request, new_delivery
from schemas.delivery_results import DeliveryResult, encode_delivery_result
from schemas.messages import Message
from schemas.topics import DEAD_LETTERS, DELIVERY_RESULTS, DEVICE_EVENTS, MESSAGES, MESSAGES_ADVANCED
from store.stage import StoreStage
from tests.api_support import ApiEnv, Client, check, make_device_type, make_tenant, running_api
from tests.stages.stage_records import (
    FREQ,
    HEARD,
    LOCATION,
    T0,
    Owned,
    advanced,
    duplicate,
    error_event,
    keyed_advanced,
    keyed_event,
    keyed_message,
    message,
    restored_event,
    trashed_event,
)
from tests.stages.stage_support import publish, records_of, running, wait_all_committed

pytestmark = pytest.mark.integration

GROUP = "backhaul-store"
INPUTS = (MESSAGES, MESSAGES_ADVANCED, DEVICE_EVENTS, DELIVERY_RESULTS)
D1 = "5F0001"
STATIONS = {"5A01": (43.6, 1.4), "5A02": (43.6, 1.5), "5A03": (43.7, 1.45)}
MESSAGE_FIELDS = {"fields": "rinfos(rep,baseStation(name)),ackRequired"}
# The located message's computedLocation, and the device's lastComputedLocation (the reference's names).
MESSAGE_LOCATION = {k: LOCATION[k] for k in ("lat", "lng", "radius", "source")}
DEVICE_LOCATION = {"lat": LOCATION["lat"], "lng": LOCATION["lng"], "radius": LOCATION["radius"],
                   "sourceCode": LOCATION["source"]}
RADIO = ("sequenceNumber", "trashSequenceNumber", "lastCom", "lqi", "lastComputedLocation", "comState")
NA, OK, KO, NOT_SEEN = 4, 1, 3, 5


@dataclass
class Network:
    """A tenant's device type, callbacks and device, made through the API, and the store running."""

    api: ApiEnv
    client: Client
    owner: Owned
    callbacks: dict[str, str]  # name -> callback id

    async def messages(self, device: str = D1) -> list[dict[str, Any]]:
        return check(await self.client.get(f"/devices/{device}/messages", params=MESSAGE_FIELDS), 200)["data"]

    async def radio(self, device: str = D1) -> dict[str, Any]:
        body = check(await self.client.get(f"/devices/{device}"), 200)
        return {k: body.get(k) for k in RADIO}

    async def undelivered(self) -> dict[str, list[dict[str, Any]]]:
        """The undelivered list of the device, its type, its callback and its group."""
        cb, dt, grp = self.callbacks["data"], self.owner.device_type, self.owner.group
        paths = {"device": f"/devices/{D1}/callbacks-not-delivered",
                 "deviceType": f"/device-types/{dt}/callbacks-not-delivered",
                 "callback": f"/device-types/{dt}/callbacks/{cb}/callbacks-not-delivered",
                 "group": f"/groups/{grp}/callbacks-not-delivered"}
        return {k: check(await self.client.get(p), 200)["data"] for k, p in paths.items()}

    async def dead(self) -> dict[str, bool]:
        listed = check(await self.client.get(f"/device-types/{self.owner.device_type}/callbacks"), 200)["data"]
        return {c["id"]: c["dead"] for c in listed}


@contextlib.asynccontextmanager
async def network(name: str) -> AsyncIterator[Network]:
    """A group, contract, device type (keep-alive 10 min), two callbacks (DATA and DATA_ADVANCED) and
    device D1 through the API, the stations in PostgreSQL, and the store stage running."""
    async with running_api() as (api, _root):
        tenant = await make_tenant(api, name)
        c = tenant.client
        dt = await make_device_type(c, tenant, keepAlive=600)
        callbacks = {}
        for key, (kind, subtype) in {"data": (0, 2), "advanced": (1, 6)}.items():
            callbacks[key] = check(await c.post(f"/device-types/{dt}/callbacks", {
                "channel": "URL", "callbackType": kind, "callbackSubtype": subtype, "enabled": True,
                "httpMethod": "GET", "url": f"http://127.0.0.1:9/{key}?d={{device}}"}), 201)["id"]
        check(await c.post("/devices/", {"id": D1, "name": "readback", "pac": "0" * 16, "deviceTypeId": dt}), 201)
        await api.pool.executemany("INSERT INTO base_stations(id, name, lat, lng) VALUES ($1, $2, $3, $4)",
                                   [(s, f"station {s}", lat, lng) for s, (lat, lng) in STATIONS.items()])
        registration = await api.pool.fetchval("SELECT registration_id FROM devices WHERE id = $1", D1)
        pool = await db.create_pool(min_size=1, max_size=4)
        try:
            async with running(StoreStage(pool)):
                yield Network(api, c, Owned(dt, tenant.group, {D1: registration}), callbacks)
        finally:
            await pool.close()


async def store(records: dict[str, list[tuple[bytes, bytes]]]) -> None:
    """Publish records (topic -> keyed records, in order) and wait until the store has written them,
    every one of them (none set aside in dead-letters)."""
    for name, keyed in records.items():
        if keyed:
            await publish(name, keyed)
    await wait_all_committed(GROUP, INPUTS)
    assert await records_of(DEAD_LETTERS, DeadLetter.decode) == []


def reception(station: str, rssi: float, snr: float, rep: int, cb_status: list | None = None) -> dict[str, Any]:
    """One entry of a message's `rinfos` as the API shows it (cbStatus on the first only): radio values as
    the live service writes them, decimal strings with two decimals."""
    lat, lng = STATIONS[station]
    entry = {"baseStation": {"id": station, "name": f"station {station}"}, "rssi": f"{rssi:.2f}", "snr": f"{snr:.2f}",
             "freq": FREQ, "lat": f"{lat:.2f}", "lng": f"{lng:.2f}", "rep": rep,
             "repetitions": [{"repeated": False}] * rep}
    return entry if cb_status is None else {**entry, "cbStatus": cb_status}


async def test_messages_receptions_and_aggregates_read_back_complete_and_survive_replays(isolated):
    async with network("Readback messages") as net:
        o = net.owner
        m1 = message(o, D1, 1)
        dups = [duplicate(o, m1, "5A02", rssi=-110.5), duplicate(o, m1, "5A03", rssi=-121.0)]
        await store({MESSAGES: [keyed_message(m) for m in (m1, *dups)]})
        first_only = {"device": {"id": D1, "name": "readback"}, "time": T0, "data": "c0ffee", "seqNumber": 1,
                      "nbFrames": 1, "lqi": NA, "ackRequired": False,
                      "rinfos": [reception("5A01", -100.0, 12.5, 1, [])]}
        assert await net.messages() == [first_only], "the first reception, until the aggregate comes"
        assert await net.radio() == {"sequenceNumber": 1, "trashSequenceNumber": 0, "lastCom": T0, "lqi": NA,
                                     "lastComputedLocation": None, "comState": OK}, "heard once: OK, not NOT_SEEN"

        a1 = advanced(o, m1)
        await store({MESSAGES_ADVANCED: [keyed_advanced(a1)]})
        aggregated = {**first_only, "nbFrames": 6, "lqi": 3, "computedLocation": [MESSAGE_LOCATION],
                      "rinfos": [reception(s, r, n, rep, [] if i == 0 else None) for i, (s, r, n, rep) in enumerate(HEARD)]}
        assert await net.messages() == [aggregated], "DATA_ADVANCED: every station's reception, frames, lqi, location"
        assert (await net.radio())["lqi"] == 3 and (await net.radio())["lastComputedLocation"] == DEVICE_LOCATION

        # Message 2: its aggregate reaches the store before its first reception (another topic).
        m2 = message(o, D1, 2, time_ms=T0 + 60_000, data="beef", ack=True)
        nowhere = {"source": 2, "status": 20}
        a2 = advanced(o, m2, HEARD[1:], location=nowhere, lqi=("Good", 2))
        await store({MESSAGES_ADVANCED: [keyed_advanced(a2)]})
        await store({MESSAGES: [keyed_message(m2)]})
        second = {"device": {"id": D1, "name": "readback"}, "time": T0 + 60_000, "data": "beef", "seqNumber": 2,
                  "ackRequired": True, "nbFrames": 3, "lqi": 2,
                  "rinfos": [reception(s, r, n, rep, [] if i == 0 else None) for i, (s, r, n, rep) in enumerate(HEARD[1:])]}
        shown = await net.messages()
        assert shown == [second, aggregated], "the late first reception does not replace the aggregate; " \
                                              "not located: no computedLocation"
        radio = {"sequenceNumber": 2, "trashSequenceNumber": 0, "lastCom": T0 + 60_000, "lqi": 2,
                 "lastComputedLocation": DEVICE_LOCATION, "comState": OK}
        assert await net.radio() == radio, "no location this time: the last one known is kept"

        # Everything again, in the order it came (a replay).
        await store({MESSAGES: [keyed_message(m) for m in (m1, *dups, m2)],
                     MESSAGES_ADVANCED: [keyed_advanced(a) for a in (a1, a2)]})
        assert await net.messages() == shown
        assert await net.radio() == radio


async def test_device_events_set_the_radio_state_and_a_replay_keeps_it(isolated):
    async with network("Readback events") as net:
        o = net.owner
        now = int(time.time() * 1000)
        m1 = message(o, D1, 40, time_ms=now - 3_000_000)
        error = error_event(o, D1, deadline_ms=now - 2_400_000, last_seen_ms=m1["time"])
        await store({MESSAGES: [keyed_message(m1)]})
        await store({DEVICE_EVENTS: [keyed_event(error)]})
        device = check(await net.client.get(f"/devices/{D1}"), 200)
        assert (device["comState"], device["comStateMissedPeriods"]) == (KO, 5), "an ERROR: KO, 5 periods missed"

        m2 = message(o, D1, 41, time_ms=now - 1000)
        back = restored_event(o, D1, m2, error_time_ms=error["time"])
        trashed = trashed_event(o, D1, seq=39, last_seq=41, time_ms=now - 500)
        await store({MESSAGES: [keyed_message(m2)]})
        assert (await net.radio())["comState"] == KO, "heard again, but only RESTORED says the device is back"
        await store({DEVICE_EVENTS: [keyed_event(back), keyed_event(trashed)]})
        radio = {"sequenceNumber": 41, "trashSequenceNumber": 39, "lastCom": now - 1000, "lqi": NA,
                 "lastComputedLocation": None, "comState": OK}
        assert await net.radio() == radio

        await store({MESSAGES: [keyed_message(m) for m in (m1, m2)],
                     DEVICE_EVENTS: [keyed_event(e) for e in (error, back, trashed)]})
        assert await net.radio() == radio, "the replay ends where the records do"
        rows = await net.api.pool.fetch("SELECT id FROM device_events WHERE device_id = $1 ORDER BY time", D1)
        assert [r["id"] for r in rows] == [error["id"], back["id"], trashed["id"]], "each event stored once"


def routed(o: Owned, m: Message, callback: str, created_ms: int) -> Delivery:
    d = new_delivery(m, callback_id=callback, kind="DATA_UPLINK", channel="URL", device_type_id=o.device_type,
                     message_id=m["id"], origin_ms=m["time"], created_ms=created_ms,
                     variables={"device": m["device"], "seqNumber": m["seqNumber"]})
    d["request"] = http_request("GET", f"http://127.0.0.1:9/data?d={m['device']}", {}, None, None)
    return d


def answer(d: Delivery, send: str, attempt: int, at: int, status: int, *, dead: bool = False) -> DeliveryResult:
    return results.done(d, send_id=send, attempt=attempt, sent_at_ms=at, now_ms=at + 30, status=status,
                        error_class="ok" if status == 200 else "http_5xx", info=None if status == 200 else f"HTTP {status}",
                        latency_ms=30.0, answer="", next_attempt_at_ms=None if status == 200 or dead else at + 60_000,
                        dead_delivery=d if dead else None)


def keyed_results(records: list[DeliveryResult]) -> list[tuple[bytes, bytes]]:
    return [(r["device"].encode(), encode_delivery_result(r)) for r in records]


async def test_attempts_undelivered_records_and_dead_read_back_once_and_complete(isolated):
    async with network("Readback attempts") as net:
        o, cb, cb_adv = net.owner, net.callbacks["data"], net.callbacks["advanced"]
        m1, m2 = message(o, D1, 1, time_ms=T0), message(o, D1, 2, time_ms=T0 + 60_000)
        a1 = advanced(o, m1)
        d1, d2 = routed(o, m1, cb, T0 + 100), routed(o, m2, cb, T0 + 60_100)
        d_adv = {**new_delivery(a1, callback_id=cb_adv, kind="DATA_ADVANCED", channel="URL",
                                device_type_id=o.device_type, message_id=m1["id"], origin_ms=a1["deadline"],
                                created_ms=a1["deadline"] + 10, variables={"device": D1}),
                 "request": http_request("GET", "http://127.0.0.1:9/advanced", {}, None, None)}
        await store({MESSAGES: [keyed_message(m) for m in (m1, m2)], MESSAGES_ADVANCED: [keyed_advanced(a1)]})

        out = results.sending(d1, "s1", 1, T0 + 200)
        await store({DELIVERY_RESULTS: keyed_results([out])})
        [_, first] = await net.messages()
        assert first["rinfos"][0]["cbStatus"] == [{"info": "sending: no answer yet", "cbDef": cb, "time": T0 + 200}]

        history = [out, answer(d1, "s1", 1, T0 + 200, 500),
                   results.sending(d1, "s2", 2, T0 + 50_200), answer(d1, "s2", 2, T0 + 50_200, 200),
                   results.sending(d_adv, "s3", 1, T0 + 25_100), answer(d_adv, "s3", 1, T0 + 25_100, 200)]
        given_up = []
        for n, at in enumerate((T0 + 60_200, T0 + 120_200, T0 + 240_200), 1):
            given_up += [results.sending(d2, f"s{3 + n}", n, at), answer(d2, f"s{3 + n}", n, at, 503, dead=n == 3)]
        await store({DELIVERY_RESULTS: keyed_results(history[1:] + given_up)})

        def shown(messages: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
            return {m["seqNumber"]: m["rinfos"][0]["cbStatus"] for m in messages}
        expected = {
            1: [{"status": 500, "info": "HTTP 500", "cbDef": cb, "time": T0 + 200},
                {"status": 200, "info": "success", "cbDef": cb_adv, "time": T0 + 25_100},
                {"status": 200, "info": "success", "cbDef": cb, "time": T0 + 50_200}],
            2: [{"status": 503, "info": "HTTP 503", "cbDef": cb, "time": at}
                for at in (T0 + 60_200, T0 + 120_200, T0 + 240_200)],
        }
        assert shown(await net.messages()) == expected, "every attempt of every callback, the answer replacing 'sending'"
        undelivered = {"deviceId": D1, "deviceTypeId": o.device_type, "time": T0 + 60_000, "data": "c0ffee",
                       "snr": "12.5", "status": "503", "message": "HTTP 503", "callbackId": cb,
                       "callback": {"url": f"http://127.0.0.1:9/data?d={D1}", "method": "GET", "headers": {}},
                       "parameters": {"device": D1, "seqNumber": 2}}
        grouped = {k: v for k, v in undelivered.items() if k not in ("deviceId", "deviceTypeId")}
        grouped.update(device=D1, deviceType=o.device_type)
        lists = {"device": [undelivered], "deviceType": [undelivered], "callback": [undelivered], "group": [grouped]}
        assert await net.undelivered() == lists
        assert await net.dead() == {cb: True, cb_adv: False}, "given up, and no success since its schedule started"

        # Every result again, then the first announcement alone once more (a late copy).
        await store({DELIVERY_RESULTS: keyed_results(history + given_up)})
        await store({DELIVERY_RESULTS: keyed_results([out])})
        assert shown(await net.messages()) == expected, "nothing listed twice, no answer undone"
        assert await net.undelivered() == lists
        assert await net.dead() == {cb: True, cb_adv: False}
