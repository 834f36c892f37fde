"""A device's consumption (`/devices/{id}/consumption/{year}[/{month}]`) through the API, from what the store wrote.

First the store stage alone, fed typed records (`schemas/` builders) at chosen times: each message
and each transmitted downlink lands in its UTC day, across a year's end, a leap year and a month;
downlinks that were not transmitted, other devices and an earlier registration do not count. Then
the whole pipeline as a customer sees it: uplinks, one asking for a DIRECT downlink that a station
transmits, and the consumption of that day.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from backhaul import db
from callback_language.downlink import InfoCode, ack_event
from oss.profiles import PROFILES
from schemas.dead_letters import DeadLetter
from schemas.topics import DEAD_LETTERS, DELIVERY_RESULTS, DEVICE_EVENTS, MESSAGES, MESSAGES_ADVANCED
from store.stage import StoreStage
from tests.api_support import check, make_device_type, make_tenant, running_api
from tests.conftest import PIPELINE_ROLES, frame, publish_frames
from tests.stages.stage_records import Owned, keyed_event, keyed_message, message
from tests.stages.stage_support import publish, records_of, running, wait_all_committed

pytestmark = pytest.mark.integration

STORE_INPUTS = (MESSAGES, MESSAGES_ADVANCED, DEVICE_EVENTS, DELIVERY_RESULTS)
USER_R = next(p.id for p in PROFILES.values() if p.name == "USER MANAGER [R]")
PAC = "0" * 16
ZERO = {"frameCount": 0, "downlinkFrameCount": 0, "roamingFrameCount": 0, "roamingDownlinkFrameCount": 0,
        "roamingDetails": []}


def at(text: str) -> int:
    """Epoch ms of a UTC time written `2026-01-01T00:00:00.000`."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def day(uplinks: int, downlinks: int) -> dict:
    return {**ZERO, "frameCount": uplinks, "downlinkFrameCount": downlinks}


def nonzero(body: dict) -> dict[int, dict]:
    """The days (0-based index) that count anything."""
    return {i: d for i, d in enumerate(body["deviceConsumptions"]) if d != ZERO}


async def test_each_message_and_transmitted_downlink_counts_in_its_utc_day(isolated):
    async with running_api() as (api, _root):
        tenant = await make_tenant(api, "Consumer")
        c = tenant.client
        dt = await make_device_type(c, tenant)
        for device in ("C0A1", "C0A2"):
            check(await c.post("/devices/", {"id": device, "name": device, "pac": PAC, "deviceTypeId": dt}), 201)
        registrations = {r["id"]: r["registration_id"] for r in await api.pool.fetch(
            "SELECT id, registration_id FROM devices WHERE id = ANY($1)", ["C0A1", "C0A2"])}
        owner = Owned(dt, tenant.group, registrations)

        def ack(uplink: dict, code: InfoCode, when: str, transmitted: bool) -> dict:
            return ack_event(uplink["device"], uplink["id"], code, device_type_id=dt, group_id=tenant.group,
                             now_ms=at(when), downlink_ack=transmitted, registration_id=registrations[uplink["device"]],
                             station="5A01" if transmitted else None)

        last_of_2025 = message(owner, "C0A1", 1, time_ms=at("2025-12-31T23:59:59.999"))
        new_year = message(owner, "C0A1", 2, time_ms=at("2026-01-01T00:00:00.000"), ack=True)
        noon = message(owner, "C0A1", 3, time_ms=at("2026-01-01T12:00:00.000"), ack=True)
        february = message(owner, "C0A1", 4, time_ms=at("2026-02-28T23:59:30.000"), ack=True)
        neighbour = message(owner, "C0A2", 1, time_ms=at("2026-01-01T08:00:00.000"))
        events = [ack(new_year, InfoCode.ACKED, "2026-01-01T00:00:21.000", True),
                  ack(noon, InfoCode.NETWORK_ERROR, "2026-01-01T12:00:21.000", False),  # not transmitted
                  ack(february, InfoCode.ACKED, "2026-03-01T00:00:01.000", True)]  # sent the next day, in March
        pool = await db.create_pool(min_size=1, max_size=4)
        try:
            async with running(StoreStage(pool)):
                await publish(MESSAGES, [keyed_message(m) for m in (last_of_2025, new_year, noon, february, neighbour)])
                await publish(DEVICE_EVENTS, [keyed_event(e) for e in events])
                await wait_all_committed(StoreStage.group, STORE_INPUTS)
        finally:
            await pool.close()
        assert await records_of(DEAD_LETTERS, DeadLetter.decode) == []

        year = check(await c.get("/devices/C0A1/consumption/2026"), 200)
        assert year["id"] == "C0A1_2026" and len(year["deviceConsumptions"]) == 365
        assert nonzero(year) == {0: day(2, 1), 58: day(1, 0), 59: day(0, 1)}, \
            "1 January: two messages and one downlink transmitted (the failed one does not count); " \
            "28 February: one message; 1 March: the downlink sent after midnight"
        last_year = check(await c.get("/devices/C0A1/consumption/2025"), 200)
        assert last_year["id"] == "C0A1_2025" and nonzero(last_year) == {364: day(1, 0)}, "23:59:59.999 is still 2025"
        february_only = check(await c.get("/devices/C0A1/consumption/2026/2"), 200)
        assert february_only["id"] == "C0A1_2026_2" and len(february_only["deviceConsumptions"]) == 28
        assert nonzero(february_only) == {27: day(1, 0)}
        assert len(check(await c.get("/devices/C0A1/consumption/2024/2"), 200)["deviceConsumptions"]) == 29
        assert len(check(await c.get("/devices/c0a1/consumption/2024"), 200)["deviceConsumptions"]) == 366
        assert nonzero(check(await c.get("/devices/C0A2/consumption/2026/1"), 200)) == {0: day(1, 0)}

        for path, field in (("/devices/C0A1/consumption/1969", "year"), ("/devices/C0A1/consumption/10000", "year"),
                            ("/devices/C0A1/consumption/twenty", "year"), ("/devices/C0A1/consumption/2026/13", "month"),
                            ("/devices/C0A1/consumption/2026/0", "month"), ("/devices/C0A1/consumption/-1/1", "year")):
            bad = await c.get(path)
            assert bad.status == 400 and bad.body["errors"][0]["field"] == field, (path, bad.status, bad.body)
            assert bad.body["errors"][0]["type"] == "path"
        assert (await c.get("/devices/C0A9/consumption/2026")).status == 404

        other = await make_tenant(api, "Not the consumer")
        for path in ("/devices/C0A1/consumption/2026", "/devices/C0A1/consumption/2026/1"):
            refused = await other.client.get(path)
            assert refused.status == 404 and set(refused.body) == {"message"}, "another tenant's device"
        reader = check(await c.post("/api-users/", {"groupId": tenant.group, "name": "users only",
                                                    "profileIds": [USER_R]}), 201)
        forbidden = await c.as_user(reader["id"], reader["accessToken"]).get("/devices/C0A1/consumption/2026")
        assert forbidden.status == 403, "counting messages needs messages:read"

        # Registered again: the history belongs to the earlier registration, so nothing counts.
        check(await c.delete("/devices/C0A1"), 204)
        check(await c.post("/devices/", {"id": "C0A1", "name": "again", "pac": PAC, "deviceTypeId": dt}), 201)
        assert nonzero(check(await c.get("/devices/C0A1/consumption/2026"), 200)) == {}


DIRECT = {"downlink_mode": 0, "downlink_data_string": "{tapId}{rssi}{time}"}


async def test_the_pipeline_counts_uplinks_and_the_downlinks_stations_transmitted(isolated, pipeline):
    async with running_api() as (api, root):
        pipe = await pipeline([], roles=(f"{PIPELINE_ROLES},stations,acks,dispatch",), devices=2, device_type=DIRECT,
                              parent_group=root)
        asking, quiet = pipe.devices
        station = pipe.stations[0]
        sent_at = int(time.time() * 1000)
        await publish_frames([frame(asking, 1, station=station, ack=True, time_ms=sent_at),
                              frame(asking, 2, station=station, time_ms=sent_at + 1),
                              frame(quiet, 1, station=station, time_ms=sent_at)])
        [acked] = await pipe.wait_rows("SELECT body FROM device_events WHERE type = 'ACKNOWLEDGE'", 1, 40)
        assert (acked["body"]["infoCode"], acked["body"]["downlinkAck"]) == (0, True), "a station transmitted it"
        await pipe.wait_rows("SELECT id FROM messages", 3, 30)

        today = datetime.fromtimestamp(sent_at / 1000, timezone.utc)
        index = today.timetuple().tm_yday - 1
        year = check(await api.root.get(f"/devices/{asking}/consumption/{today.year}"), 200)
        assert year["id"] == f"{asking}_{today.year}"
        assert year["deviceConsumptions"][index]["frameCount"] == 2
        assert [d["downlinkFrameCount"] for d in year["deviceConsumptions"] if d["downlinkFrameCount"]] == [1]
        month = check(await api.root.get(f"/devices/{asking}/consumption/{today.year}/{today.month}"), 200)
        assert month["deviceConsumptions"][today.day - 1]["frameCount"] == 2
        assert nonzero(check(await api.root.get(f"/devices/{quiet}/consumption/{today.year}"), 200)) == \
            {index: day(1, 0)}
