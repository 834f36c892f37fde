"""Paging never repeats or skips (issue 16 point 5): time-ordered lists page by cursor, entity lists by
offset on a unique order; on the real pipeline, PostgreSQL and HTTP."""
from __future__ import annotations

import asyncio
import base64
import time
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from backhaul.kafka import make_producer
from backhaul.topics import topic
from oss.clock import now_ms
from schemas.topics import FRAMES
from tests.api_support import api, check, make_device_type, make_tenant, running_api  # noqa: F401  (fixture)
from tests.conftest import frame, publish_frames, wait_until

pytestmark = pytest.mark.integration

HISTORY = 2_000
ARRIVALS_PER_S = 20
DEVICE_READER = "5a0000000000000000000001"  # DEVICE MANAGER [R]
PAGE = 30  # not a multiple of 4: page boundaries fall inside the groups of 4 messages of one millisecond
BIG_TIE = range(1000, 1040)  # 40 messages of one millisecond: more than a page


def history_time(base: int, k: int) -> int:
    """Message k of the history: groups of 4 share a millisecond, and the 40 of BIG_TIE share one."""
    return base + (1000 if k in BIG_TIE else k // 4) * 1000


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def page_through(client, url: str, params: dict | None, between=None) -> list[dict]:
    """Every page of a list from `url`, following `paging.next`; `between()` is awaited between pages."""
    pages = []
    while url:
        body = check(await client.get(url, params=params), 200)
        params = None
        pages.append(body)
        url = body["paging"].get("next")
        if url and between is not None:
            await between()
    return pages


async def test_2000_messages_listed_while_20_a_second_arrive_each_exactly_once(pipeline):
    """The issue's test: a device keeps sending (through the pipeline) while a client pages its 2,000
    messages; every message stored when the listing starts is listed, and none twice."""
    async with running_api() as (env, root):
        pipe = await pipeline([], roles=("relay,ingest,store",), devices=1, parent_group=root,
                              env={"BACKHAUL_DAILY_UPLINK_QUOTA": "100000"})
        device, station = pipe.devices[0], pipe.stations[0]
        base = now_ms() - 3_600_000
        await publish_frames([frame(device, k, station=station, data=f"{k % 256:02x}", time_ms=history_time(base, k))
                              for k in range(HISTORY)])
        await pipe.wait_rows("SELECT id FROM messages", HISTORY, timeout=120)

        async def stored() -> set[int]:
            return {r["seq_number"] for r in await pipe.fetch("SELECT seq_number FROM messages")}

        producer = make_producer()
        await producer.start()
        sent = 0

        async def keep_sending() -> None:
            nonlocal sent
            started = time.monotonic()
            while True:
                seq = HISTORY + sent
                await producer.send_and_wait(topic(FRAMES), orjson.dumps(frame(device, seq, station=station)),
                                             key=device.encode())
                sent += 1
                await asyncio.sleep(max(0.0, started + sent / ARRIVALS_PER_S - time.monotonic()))

        counts = [HISTORY]

        async def one_more_stored() -> None:
            """Between two pages at least one new message is written: the writes really interleave."""
            async def grown():
                n = len(await stored())
                return n if n > counts[-1] else None
            counts.append(await wait_until(grown, 10, "a message stored while paging"))

        sender = asyncio.create_task(keep_sending())
        try:
            await wait_until(lambda: sent >= ARRIVALS_PER_S, 10, "the device sending")
            existing = await stored()
            counts[-1] = len(existing)
            began = time.monotonic()
            pages = await page_through(env.root, f"/devices/{device}/messages", {"limit": str(PAGE)},
                                       one_more_stored)
            took = time.monotonic() - began
            after = await stored()
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await producer.stop()

    listed = [m["seqNumber"] for p in pages for m in p["data"]]
    print(f"listed {len(listed)} messages in {len(pages)} pages in {took:.1f} s while "
          f"{len(after) - len(existing)} more were stored")
    assert len(listed) == len(set(listed)), "a message was listed twice"
    assert existing - set(listed) == set(), f"{len(existing - set(listed))} stored messages were not listed"
    assert set(listed) <= after
    assert len(after) - len(existing) >= len(pages) - 1 >= HISTORY // PAGE, "messages arrived during the listing"
    times = [m["time"] for p in pages for m in p["data"]]
    assert times == sorted(times, reverse=True)
    split = [i for i in range(len(pages) - 1) if pages[i]["data"][-1]["time"] == pages[i + 1]["data"][0]["time"]]
    assert split, "no page boundary fell inside a millisecond: the tie-breaker was not exercised"
    link = query_of(pages[0]["paging"]["next"])
    assert set(link) == {"limit", "before", "pageId"} and link["limit"] == str(PAGE)
    assert int(link["before"]) == pages[0]["data"][-1]["time"]


async def _store(api, rows: list[tuple]) -> None:
    """Messages (id, device, device type, time, seq) with a location, written straight into PostgreSQL."""
    await api.pool.executemany(
        "INSERT INTO messages(id, device_id, device_type_id, time, seq_number, data, computed_location, "
        "registration_id) VALUES ($1, $2, $3, $4, $5, '00', $6, (SELECT registration_id FROM devices WHERE id = $2))",
        [(*row, {"lat": 43.0, "lng": 1.0, "radius": 1000, "source": 2, "status": 1}) for row in rows])


async def test_device_type_messages_page_exactly_while_rows_land_above_below_and_among_ties(api):
    """Three devices whose messages share milliseconds; while the client pages, rows are written at the
    top, at old times and at the very milliseconds of page boundaries: each listed at most once, and every
    row there at the start is listed."""
    t = await make_tenant(api, "Ties")
    c = t.client
    dt = await make_device_type(c, t)
    devices = ["7A01", "7A02", "7A03"]
    for d in devices:
        check(await c.post("/devices/", {"id": d, "name": d, "pac": "0" * 16, "deviceTypeId": dt}), 201)
    base = now_ms() - 86_400_000
    await _store(api, [(f"{d}-{k}-{base + k // 5 * 10}", d, dt, base + k // 5 * 10, k)
                       for k in range(100) for d in devices])
    before_listing = {r["id"] for r in await api.pool.fetch("SELECT id FROM messages WHERE device_type_id = $1", dt)}
    written = iter(range(10_000, 20_000))

    async def write_meanwhile() -> None:
        k = next(written)
        boundary = base + (k % 20) * 10  # the milliseconds of the history, page boundaries among them
        await _store(api, [(f"0-{k}-top", devices[0], dt, now_ms(), k),
                           (f"0-{k}-tie", devices[1], dt, boundary, k),
                           (f"z-{k}-tie", devices[2], dt, boundary, k)])

    pages = await page_through(c, f"/device-types/{dt}/messages", {"limit": "7"}, write_meanwhile)
    listed = [(m["device"]["id"], m["seqNumber"], m["time"]) for p in pages for m in p["data"]]
    assert len(listed) == len(set(listed)), "a message was listed twice"
    ids = {f"{d}-{seq}-{tm}" for d, seq, tm in listed if seq < 10_000}
    assert ids == before_listing
    assert [x[2] for x in listed] == sorted((x[2] for x in listed), reverse=True)


async def test_locations_and_undelivered_callbacks_page_by_cursor(api):
    t = await make_tenant(api, "Cursor lists")
    c = t.client
    dt = await make_device_type(c, t)
    check(await c.post("/devices/", {"id": "7B01", "name": "b", "pac": "0" * 16, "deviceTypeId": dt}), 201)
    base = now_ms() - 60_000
    await _store(api, [(f"7B01-{k}", "7B01", dt, base + k // 3, k) for k in range(10)])
    await api.pool.executemany(
        "INSERT INTO undelivered_callbacks(delivery_id, device_id, device_type_id, group_id, callback_id, time, "
        "status, callback, delivery, registration_id) VALUES ($1, '7B01', $2, $3, 'cb', $4, 600, '{}', '{}', "
        "(SELECT registration_id FROM devices WHERE id = '7B01'))",
        [(f"d{k}", dt, t.group, base + k // 4) for k in range(9)])
    locations = await page_through(c, "/devices/7B01/locations", {"limit": "2"})
    assert [len(p["data"]) for p in locations] == [2, 2, 2, 2, 2]
    assert sorted(x["time"] for p in locations for x in p["data"]) == sorted(base + k // 3 for k in range(10))
    for path in ("/devices/7B01", f"/device-types/{dt}", f"/groups/{t.group}"):
        pages = await page_through(c, f"{path}/callbacks-not-delivered", {"limit": "2", "since": str(base)})
        assert [len(p["data"]) for p in pages] == [2, 2, 2, 2, 1]
        assert sorted(x["time"] for p in pages for x in p["data"]) == sorted(base + k // 4 for k in range(9))
        link = query_of(pages[0]["paging"]["next"])
        assert set(link) == {"limit", "since", "before", "pageId"} and link["since"] == str(base)


async def test_page_id_is_checked_and_offset_still_works_on_time_lists(api):
    t = await make_tenant(api, "Tokens of pages")
    c = t.client
    dt = await make_device_type(c, t)
    check(await c.post("/devices/", {"id": "7C01", "name": "c", "pac": "0" * 16, "deviceTypeId": dt}), 201)
    base = now_ms() - 60_000
    await _store(api, [(f"7C01-{k}", "7C01", dt, base, k) for k in range(5)])
    url = "/devices/7C01/messages"
    everything = [m["seqNumber"] for m in check(await c.get(url), 200)["data"]]
    assert len(everything) == 5
    first = check(await c.get(url, params={"limit": "2", "fields": "device(name)"}), 200)
    link = query_of(first["paging"]["next"])
    assert link["fields"] == "device(name)" and link["before"] == str(base)
    second = check(await c.get(url, params=link), 200)
    assert [m["seqNumber"] for m in first["data"] + second["data"]] == everything[:4]
    assert second["data"][0]["device"]["name"] == "c"
    assert [m["seqNumber"] for m in check(await c.get(url, params={"offset": "3"}), 200)["data"]] == everything[3:]
    key = base64.urlsafe_b64encode(b"7C01-9").rstrip(b"=").decode()
    assert len(check(await c.get(url, params={"before": str(base), "pageId": key}), 200)["data"]) == 5
    for params, reason in (({"pageId": link["pageId"]}, "goes with before"),
                           ({"before": str(base), "pageId": "not base64!"}, "not a page token"),
                           ({"before": str(base), "pageId": "AA"}, "not a page token"),
                           ({"before": str(base), "pageId": "x" * 201}, "at most 200 characters"),
                           ({"before": str(base), "pageId": "_w"}, "not a page token")):
        bad = await c.get(url, params=params)
        assert bad.status == 400, params
        assert bad.body["errors"][0]["field"] == "pageId" and reason in bad.body["errors"][0]["message"], bad.body


async def test_entity_lists_page_in_a_stable_order_on_equal_sort_values(api):
    """Devices, device types, groups, users, API users and contracts with the same names, paged 2 by 2 in
    every sort: the pages together are the whole list, in its order, each item once."""
    t = await make_tenant(api, "Same names")
    c = t.client
    dt = await make_device_type(c, t)
    for i in range(7):
        check(await c.post("/devices/", {"id": f"7D{i:02d}", "name": "same", "pac": "0" * 16, "deviceTypeId": dt}),
              201)
        await make_device_type(c, t)
        check(await c.post("/groups/", {"name": "same", "parentId": t.group}), 201)
        check(await c.post("/users/", {"firstName": "Same", "lastName": "Name", "email": f"same{i}@example.com",
                                       "userRoles": [{"groupId": t.group, "profileId": DEVICE_READER}]}), 201)
        check(await c.post("/api-users/", {"groupId": t.group, "name": "same", "profileIds": [DEVICE_READER]}), 201)
        check(await api.root.post("/contract-infos/", {"name": "same", "groupId": t.group}), 201)
    lists = {"/devices/": ("id", "-id", "name", "-name", "lastCom", "-lastCom"),
             "/device-types/": ("id", "-id", "name", "-name"), "/groups/": ("id", "-id", "name", "-name"),
             "/users/": ("id", "-id", "name", "-name", "email", "-email"), "/api-users/": (None,),
             "/contract-infos/": (None,), f"/contract-infos/{t.contract}/devices": (None,)}
    for path, sorts in lists.items():
        for sort in sorts:
            params = {"sort": sort} if sort else {}
            whole = [x["id"] for x in check(await c.get(path, params=params), 200)["data"]]
            assert len(whole) >= 7, (path, whole)
            paged = [x["id"] for p in await page_through(c, path, {**params, "limit": "2"}) for x in p["data"]]
            assert paged == whole, (path, sort)
