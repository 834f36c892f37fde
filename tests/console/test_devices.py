"""The device list and the device page in a real browser, on data made through the API (radio state and
history written where the pipeline's store writes them)."""
from __future__ import annotations

import csv
import re
import time
from dataclasses import dataclass

import aiohttp
import pytest
from selenium.webdriver.support.ui import Select

from console.device_columns import COLUMNS
from oss.clock import now_ms
from oss.profiles import ADMIN, PROFILES
from tests.api_support import Tenant, check, make_device_type

CUSTOMER_W = next(p.id for p in PROFILES.values() if p.name == "CUSTOMER [W]")
HOUR = 3_600_000


@dataclass
class Fleet:
    top: Tenant
    sub: Tenant
    other: Tenant
    heard: dict[str, int]  # device id -> last seen (ms)


def make_fleet(site, prefix: str) -> Fleet:
    """Group top with a sub-group, and another group; devices heard at different times."""
    top = site.tenant(f"{prefix} top")
    sub = site.tenant(f"{prefix} sub", parent=top.group)
    other = site.tenant(f"{prefix} other")
    now = now_ms()
    heard = {}

    async def make() -> None:
        for tenant, devices in ((top, (("01", 1), ("02", 30), ("03", None))), (sub, (("11", 2),)),
                                (other, (("21", 1),))):
            dt = await make_device_type(tenant.client, tenant)
            for suffix, hours_ago in devices:
                ident = f"{prefix}{suffix}"
                check(await tenant.client.post("/devices/", {"id": ident, "name": f"dev {ident}", "pac": "0" * 16,
                                                             "deviceTypeId": dt}), 201)
                if hours_ago is not None:
                    heard[ident] = now - hours_ago * HOUR
                    await site.env.pool.execute(
                        "INSERT INTO device_status(device_id, last_com, com_state, registration_id) "
                        "VALUES ($1, $2, 1, (SELECT registration_id FROM devices WHERE id = $1))",
                        ident, heard[ident])
    site.run(make())
    return Fleet(top, sub, other, heard)


def listed_ids(browser) -> list[str]:
    return [row.get_attribute("data-id") for row in browser.finds("#devices tbody tr[data-id]")]


def shown_count(browser) -> tuple[int, int]:
    shown, total = re.fullmatch(r"(\d+) shown / (\d+) matching", browser.text("#device-count")).groups()
    return int(shown), int(total)


def api_count(site, tenant: Tenant, **query: str) -> int:
    return int(check(site.run(tenant.client.get("/devices/count", params=query)), 200)["count"])


def test_filter_by_group_with_sub_groups_and_by_last_seen(site, browser):
    fleet = make_fleet(site, "A0")
    browser.login(site.person([(fleet.top.group, ADMIN)]))
    browser.open("/console/devices")
    assert sorted(listed_ids(browser)) == ["A001", "A002", "A003", "A011"]
    assert shown_count(browser) == (4, 4)
    browser.check_plain()
    browser.shot("devices")
    Select(browser.find("#f-group")).select_by_value(fleet.top.group)
    browser.submit("#apply-filter")
    assert sorted(listed_ids(browser)) == ["A001", "A002", "A003"], "the sub-group's device needs the box"
    assert "groupIds=" in browser.driver.current_url and "deep" not in browser.driver.current_url
    browser.find("#f-deep").click()
    browser.submit("#apply-filter")
    assert sorted(listed_ids(browser)) == ["A001", "A002", "A003", "A011"]
    assert shown_count(browser) == (4, api_count(site, fleet.top, groupIds=fleet.top.group, deep="true"))
    # Last seen in the last 3 hours (the form's datetime-local is UTC).
    since = time.strftime("%Y-%m-%dT%H:%M", time.gmtime((now_ms() - 3 * HOUR) / 1000))
    browser.driver.execute_script("arguments[0].value = arguments[1]", browser.find("#f-since"), since)
    browser.submit("#apply-filter")
    assert sorted(listed_ids(browser)) == ["A001", "A011"]
    assert "lastComSince=" in browser.driver.current_url, "the query holds the API's own parameter names"
    # The list's query string is GET /v2/devices/'s: passed to the API as it is, it lists the same devices.
    query = dict(p.split("=", 1) for p in browser.driver.current_url.split("?", 1)[1].split("&"))
    same = check(site.run(fleet.top.client.get("/devices/", params={k: v for k, v in query.items()})), 200)
    assert sorted(d["id"] for d in same["data"]) == ["A001", "A011"]
    assert shown_count(browser) == (2, 2)
    # The series toolbar carries the filter.
    new_series = browser.find("nav.toolbar a[href^='/console/devices/series/create']").get_attribute("href")
    assert "lastComSince=" in new_series and "deep=true" in new_series
    # Sorting by last seen (a column header), newest first on the second click.
    browser.submit("th[data-column=lastCom] a")
    assert listed_ids(browser) == ["A011", "A001"]
    browser.submit("th[data-column=lastCom] a")
    assert listed_ids(browser) == ["A001", "A011"]


def test_columns_are_chosen_limited_to_eight_and_remembered_and_the_export_uses_them(site, browser):
    fleet = make_fleet(site, "B0")
    person = site.person([(fleet.top.group, ADMIN)])
    browser.login(person)
    browser.open("/console/devices")
    browser.submit("#choose-columns")
    browser.check_plain()
    browser.shot("devices-columns")
    wanted = ["id", "lastCom", "state", "group", "token", "sequenceNumber", "creationTime", "location"]
    nine = [*wanted, "contract"]
    for box in browser.finds("input[name=column]"):
        if box.is_selected() != (box.get_attribute("value") in nine):
            box.click()
    browser.submit("#save-columns")
    assert "at most 8 columns (you chose 9)" in browser.text("#columns-error")
    browser.find("#col-contract").click()
    browser.submit("#save-columns")
    labels = [COLUMNS[k].label for k in COLUMNS if k in wanted]  # the catalogue's order
    assert [th.text for th in browser.finds("#devices thead th")] == labels
    browser.logout()
    browser.login(person)
    browser.open("/console/devices")
    assert [th.text for th in browser.finds("#devices thead th")] == labels
    # Export the filtered list: every page, the chosen columns, ';'-separated.
    browser.open(f"/console/devices?groupIds={fleet.top.group}&deep=true&limit=20")
    browser.find("#export").click()
    target = browser.downloads / "devices.csv"
    browser.wait(lambda: target.exists() and target.stat().st_size > 0, what="the CSV download")
    rows = list(csv.reader(target.read_text(encoding="utf-8").splitlines(), delimiter=";"))
    assert rows[0] == labels
    assert len(rows) - 1 == api_count(site, fleet.top, groupIds=fleet.top.group, deep="true") == 4
    assert sorted(r[0] for r in rows[1:]) == ["B001", "B002", "B003", "B011"]
    seen = {r[0]: r[labels.index("Last seen")] for r in rows[1:]}
    assert seen["B003"] == "" and seen["B001"] == time.strftime(
        "%Y-%m-%d %H:%M:%S", time.gmtime(fleet.heard["B001"] // 1000))


def test_the_export_streams_every_page(site, browser):
    tenant = site.tenant("Many")

    async def make() -> None:
        dt = await make_device_type(tenant.client, tenant)
        for n in range(105):
            check(await tenant.client.post("/devices/", {"id": f"C{n:04X}", "name": f"=cmd{n}", "pac": "0" * 16,
                                                         "deviceTypeId": dt}), 201)
    site.run(make())
    browser.login(site.person([(tenant.group, ADMIN)]))
    browser.open("/console/devices?limit=20")
    assert shown_count(browser) == (20, 105)
    browser.find("#export").click()
    target = browser.downloads / "devices.csv"
    browser.wait(lambda: target.exists() and target.read_bytes().count(b"\n") == 106, what="the whole CSV")
    rows = list(csv.reader(target.read_text(encoding="utf-8").splitlines(), delimiter=";"))
    ids = [r[0] for r in rows[1:]]
    assert len(ids) == len(set(ids)) == 105
    assert all(r[1].startswith("'=cmd") for r in rows[1:]), "a name starting with = is not a formula"


def test_a_customer_sees_nothing_of_another_group(site, browser):
    fleet = make_fleet(site, "D0")
    browser.login(site.person([(fleet.other.group, CUSTOMER_W)]))
    browser.open("/console/devices")
    assert listed_ids(browser) == ["D021"]
    browser.open("/console/devices/D001")
    assert "Not found" in browser.text()
    browser.open("/console/devices/D001/map")
    assert "Not found" in browser.text()
    browser.open(f"/console/devices?groupIds={fleet.top.group}&deep=true")
    assert listed_ids(browser) == [] and shown_count(browser) == (0, 0)
    cookie = browser.driver.get_cookie("bh_console")["value"]

    async def fetch(path: str) -> tuple[int, str, str]:
        async with aiohttp.ClientSession(cookies={"bh_console": cookie}) as http:
            async with http.get(f"{site.base}{path}", allow_redirects=False) as resp:
                return resp.status, await resp.text(), resp.headers.get("Server-Timing", "")

    status, body, timing = site.run(fetch("/console/devices/D001"))
    assert status == 404 and re.fullmatch(r"app;dur=\d+\.\d", timing)
    status, body, timing = site.run(fetch("/console/devices/export.csv"))
    assert status == 200 and "D021" in body and "D001" not in body and "D011" not in body
    assert re.fullmatch(r"app;dur=\d+\.\d", timing)
    status, body, _ = site.run(fetch(f"/console/devices/export.csv?groupIds={fleet.top.group}&deep=true"))
    assert status == 200 and body.count("\n") == 1, "the header only"


def test_device_page_shows_messages_receptions_callbacks_chart_map_and_the_deleted_list(site, browser):
    fleet = make_fleet(site, "E0")
    top = fleet.top
    check(site.run(top.client.put("/devices/E001", {"lat": 43.6047, "lng": 1.4442})), 204)
    start = now_ms() - 30 * 60_000

    async def history() -> None:
        for i in range(7):
            mid = f"E001:{i}"
            await site.env.pool.execute(
                "INSERT INTO messages(id, device_id, time, seq_number, data, rinfos, lqi, registration_id) "
                "VALUES ($1, 'E001', $2, $3, $4, $5, $6, (SELECT registration_id FROM devices WHERE id = 'E001'))",
                mid, start + i * 60_000, i, f"{i:02x}",
                [{"baseStation": "0A0B", "rssi": -120.0 + i, "snr": 8.0 + i / 2, "freq": 868.1, "rep": 1},
                 {"baseStation": "0A0C", "rssi": -130.0, "snr": 5.0, "freq": 868.2, "rep": 2}], i % 4)
            await site.env.pool.execute(
                "INSERT INTO callback_attempts(delivery_id, attempt, message_id, device_id, callback_id, time, "
                "status, info, registration_id) VALUES ($1, 1, $2, 'E001', 'cb-up', $3, $4, $5, "
                "(SELECT registration_id FROM devices WHERE id = 'E001'))",
                f"d{mid}", mid, start + i * 60_000 + 40, 200 if i % 2 else 503, None if i % 2 else "Unavailable")
        await site.env.pool.execute(
            "INSERT INTO device_events(id, device_id, type, time, body, registration_id) VALUES "
            "('E001:ERROR:1', 'E001', 'ERROR', $1, $2, (SELECT registration_id FROM devices WHERE id = 'E001'))",
            start - 1000, {"type": "ERROR", "info": "keep-alive missed", "severity": "ERROR"})
    site.run(history())
    browser.login(site.person([(top.group, ADMIN)]))
    browser.open("/console/devices/E001")
    assert browser.text("#pac") == "0" * 16, "devices:write shows the PAC"
    rows = browser.finds("#messages tr.message")
    assert [r.get_attribute("data-seq") for r in rows] == [str(i) for i in range(6, -1, -1)]
    newest = rows[0]
    assert [li.text for li in newest.find_elements("css selector", "li.rinfo")] == [
        "0A0B: RSSI -114.00 dBm, SNR 11.00 dB, 868.1 MHz, 1 rep.", "0A0C: RSSI -130.00 dBm, SNR 5.00 dB, 868.2 MHz, 2 rep."]
    assert newest.find_element("css selector", "li.cb").text.startswith("503 Unavailable · callback cb-up")
    assert rows[1].find_element("css selector", "li.cb").text.startswith("200 success · callback cb-up")
    assert len(browser.finds("svg.radio circle.point.rssi")) == len(rows) == 7
    assert len(browser.finds("svg.radio circle.point.snr")) == 7
    assert "keep-alive missed" in browser.text("#events")
    browser.check_plain()
    browser.shot("device")
    browser.submit("#locate")
    point = browser.find("#device-map g.marker.fixed")
    assert (float(point.get_attribute("data-lat")), float(point.get_attribute("data-lng"))) == (43.6047, 1.4442)
    # The map is fitted to the position: at its centre, streets apart.
    circle = point.find_element("css selector", "circle")
    assert (float(circle.get_attribute("cx")), float(circle.get_attribute("cy"))) == pytest.approx((384, 192), abs=1)
    assert browser.find("#device-map").get_attribute("data-zoom") == "14"
    assert browser.finds("#device-map line.meridian"), "no base layer set: the graticule"
    assert "43.60470, 1.44420" in browser.text("#positions")
    browser.check_plain()
    browser.shot("device-map")
    # A reader (no devices:write) does not see the PAC.
    browser.logout()
    browser.login(site.person([(top.group, next(p.id for p in PROFILES.values() if p.name == "CUSTOMER [R]"))]))
    browser.open("/console/devices/E001")
    assert browser.finds("#pac") == [] and "0000000000000000" not in browser.driver.page_source
    # Deleted devices are listed apart.
    check(site.run(top.client.delete("/devices/E002")), 204)
    browser.open("/console/devices")
    assert "E002" not in listed_ids(browser)
    browser.submit("#deleted-link")
    assert [r.get_attribute("data-id") for r in browser.finds("#deleted-devices tbody tr[data-id]")] == ["E002"]
    browser.check_plain()
    browser.shot("devices-deleted")
