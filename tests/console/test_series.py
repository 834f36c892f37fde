"""New device and the series toolbar in a real browser: a CSV with bad lines is dry-run (per-line errors,
nothing written), then run as a job whose page follows it to the end; series from the device list's
filter; replace; another tenant's devices answer "not found" per line."""
from __future__ import annotations

import random
from pathlib import Path

from selenium.webdriver.support.ui import Select

from oss.profiles import ADMIN
from tests.api_support import check, make_device_type
from tests.console.harness import Browser

PAC = "0123456789ABCDEF"


def fresh_ids(count: int) -> list[str]:
    """Device ids no other test uses (device ids are global)."""
    base = random.randrange(0x10000000, 0xF0000000)
    return [f"{base + i:X}" for i in range(count)]


def table(browser: Browser, css: str) -> list[list[str]]:
    return [[td.text for td in tr.find_elements("css selector", "td")] for tr in browser.finds(f"{css} tbody tr")]


def upload(browser: Browser, path: Path, data: bytes) -> None:
    path.write_bytes(data)
    browser.find("#file").send_keys(str(path))


def device_status(site, client, ident: str) -> int:
    return site.run(client.get(f"/devices/{ident}")).status


def make_devices(site, client, device_type: str, ids: list[str], **extra) -> None:
    async def make() -> None:
        for ident in ids:
            check(await client.post("/devices/", {"id": ident, "name": f"dev {ident}", "pac": PAC,
                                                  "deviceTypeId": device_type, **extra}), 201)
    site.run(make())


def test_a_series_with_bad_lines_is_dry_run_then_run_as_a_job(site, browser, tmp_path):
    tenant = site.tenant("Series Co")
    site.run(make_device_type(tenant.client, tenant, name="meters"))
    good, bad_pac, too_many, good2 = fresh_ids(4)
    lines = [b"id;pac;name", f"{good};{PAC};first meter".encode(), f"XYZ;{PAC}".encode(),
             f"{good.lower()};{PAC}".encode(), f"{bad_pac};123".encode(), f"{too_many};{PAC};n;1;2;3".encode(),
             b"\xff\xfe;" + PAC.encode(), f"{good2};{PAC}".encode()]
    browser.login(site.person([(tenant.group, ADMIN)]))
    browser.open("/console/devices/series/create")
    browser.check_plain()
    browser.shot("series-create")
    upload(browser, tmp_path / "series.csv", b"\n".join(lines) + b"\n")
    Select(browser.find("#deviceTypeId")).select_by_visible_text("meters")
    browser.find("#prefix").send_keys("meter ")
    browser.submit("#dry-run")

    errors = table(browser, "#row-errors")
    assert [(row[0], row[1]) for row in errors] == [("3", "XYZ"), ("4", good), ("5", bad_pac), ("6", too_many),
                                                    ("7", "")]
    reasons = [row[3] for row in errors]
    assert "hexadecimal" in reasons[0] and "repeats the device of row 2" in reasons[1]
    assert "16 hexadecimal" in reasons[2] and "6 cells" in reasons[3] and "not UTF-8" in reasons[4]
    assert table(browser, "#accepted-rows") == [["2", good, "would be created"], ["8", good2, "would be created"]]
    assert "2 would be created, 5 errors" in browser.text("#summary")
    assert device_status(site, tenant.client, good) == 404, "a dry run writes nothing"
    browser.check_plain()
    browser.shot("series-dry-run")

    browser.submit("#run")
    assert "/console/devices/jobs/" in browser.driver.current_url
    browser.wait(lambda: browser.text("#job-state") == "done", 20, "the job to finish")
    assert browser.text("#job-count") == "7/7"
    assert [(row[0], row[1]) for row in table(browser, "#row-errors")] == [(r[0], r[1]) for r in errors]
    assert "2 devices were created; 5 errors" in browser.text("#job-summary")
    names = {i: check(site.run(tenant.client.get(f"/devices/{i}")), 200)["name"] for i in (good, good2)}
    assert names == {good: "first meter", good2: f"meter {good2}"}
    for missing in (bad_pac, too_many):
        assert device_status(site, tenant.client, missing) == 404
    browser.check_plain()
    browser.shot("series-job")


def test_delete_series_from_the_current_filter(site, browser):
    tenant = site.tenant("Filter Co")
    doomed_type = site.run(make_device_type(tenant.client, tenant, name="old"))
    kept_type = site.run(make_device_type(tenant.client, tenant, name="new"))
    doomed, kept = fresh_ids(3), fresh_ids(2)
    make_devices(site, tenant.client, doomed_type, doomed)
    make_devices(site, tenant.client, kept_type, kept)
    browser.login(site.person([(tenant.group, ADMIN)]))
    browser.open(f"/console/devices/series/delete?deviceTypeId={doomed_type}&limit=50")
    assert browser.find("#source-filter").is_selected()
    assert f"deviceTypeId={doomed_type}" in browser.text("#series-form")
    browser.check_plain()
    browser.shot("series-delete")
    browser.submit("#dry-run")
    assert sorted(row[1] for row in table(browser, "#accepted-rows")) == sorted(doomed)
    assert all(device_status(site, tenant.client, i) == 200 for i in doomed), "a dry run deletes nothing"
    browser.submit("#run")
    browser.wait(lambda: browser.text("#job-state") == "done", 20, "the job to finish")
    assert "3 devices were deleted; 0 errors" in browser.text("#job-summary")
    assert [device_status(site, tenant.client, i) for i in doomed + kept] == [404] * 3 + [200] * 2


def test_replace_series_moves_tokens_and_reports_each_line(site, browser, tmp_path):
    tenant = site.tenant("Replace Co")
    device_type = site.run(make_device_type(tenant.client, tenant, name="trackers"))
    old, new, old2, nowhere = fresh_ids(4)
    make_devices(site, tenant.client, device_type, [old, old2])
    make_devices(site, tenant.client, device_type, [new], activable=False)
    browser.login(site.person([(tenant.group, ADMIN)]))
    browser.open("/console/devices/series/replace")
    assert not browser.finds("#source-filter"), "replace takes its pairs from a file only"
    upload(browser, tmp_path / "replace.csv", f"oldId;newId\n{old};{new}\n{old2};{nowhere}\n".encode())
    browser.submit("#dry-run")
    assert table(browser, "#accepted-rows") == [["2", old, "would be given its token to the new device"]]
    assert table(browser, "#row-errors") == [["3", old2, "targetDeviceId", "device not found"]]
    assert check(site.run(tenant.client.get(f"/devices/{new}")), 200)["token"]["state"] != 0
    browser.submit("#run")
    assert "1 was given its token to the new device" in browser.text("#summary")
    assert check(site.run(tenant.client.get(f"/devices/{new}")), 200)["token"]["state"] == 0
    assert check(site.run(tenant.client.get(f"/devices/{old}")), 200)["token"]["state"] == 1
    browser.check_plain()


def test_a_tenant_cannot_touch_another_tenants_devices_through_a_series(site, browser, tmp_path):
    mine, theirs = site.tenant("Mine Co"), site.tenant("Theirs Co")
    my_type = site.run(make_device_type(mine.client, mine))
    their_type = site.run(make_device_type(theirs.client, theirs))
    my_ids, their_ids = fresh_ids(1), fresh_ids(2)
    make_devices(site, mine.client, my_type, my_ids)
    make_devices(site, theirs.client, their_type, their_ids)
    their_job = check(site.run(theirs.client.post("/devices/bulk/suspend", {"data": their_ids})), 201)["jobId"]
    browser.login(site.person([(mine.group, ADMIN)]))
    browser.open("/console/devices/series/delete")
    browser.find("#source-file").click()
    upload(browser, tmp_path / "delete.csv", "\n".join(their_ids + my_ids).encode())
    browser.submit("#dry-run")
    assert table(browser, "#row-errors") == [[str(n), i, "id", "device not found"] for n, i in enumerate(their_ids, 1)]
    browser.submit("#run")
    browser.wait(lambda: browser.text("#job-state") == "done", 20, "the job to finish")
    assert [row[3] for row in table(browser, "#row-errors")] == ["device not found"] * 2
    assert [device_status(site, theirs.client, i) for i in their_ids] == [200, 200]
    assert device_status(site, mine.client, my_ids[0]) == 404
    # Nor see their jobs, nor pick their device type.
    browser.open(f"/console/devices/jobs/{their_job}")
    assert "Not found" in browser.text()
    browser.open("/console/devices/series/transfer")
    assert their_type not in [o.get_attribute("value") for o in browser.finds("#deviceTypeId option")]


def test_new_device_shows_the_apis_errors_beside_their_fields_then_creates_it(site, browser):
    tenant = site.tenant("New Co")
    site.run(make_device_type(tenant.client, tenant, name="valves"))
    (ident,) = fresh_ids(1)
    browser.login(site.person([(tenant.group, ADMIN)]))
    browser.open("/console/devices/new")
    browser.check_plain()
    browser.shot("device-new")
    browser.find("#id").send_keys(ident.lower())
    browser.find("#name").send_keys("valve one")
    browser.find("#pac").send_keys("12345")
    browser.find("#lat").send_keys("95")
    Select(browser.find("#deviceTypeId")).select_by_visible_text("valves")
    browser.submit("#create-device")
    assert "16 hexadecimal" in browser.text("#pac-error")
    assert browser.find("#lat-error").text.startswith("Latitude:")
    assert browser.find("#pac").get_attribute("aria-invalid") == "true"
    assert browser.find("#name").get_attribute("value") == "valve one", "what was typed is kept"
    assert device_status(site, tenant.client, ident) == 404
    browser.check_plain()
    browser.find("#pac").clear()
    browser.find("#pac").send_keys(PAC)
    browser.find("#lat").clear()
    browser.find("#lat").send_keys("43.6")
    browser.find("#prototype").click()
    browser.submit("#create-device")
    assert browser.driver.current_url.endswith(f"/console/devices/{ident}")
    device = check(site.run(tenant.client.get(f"/devices/{ident}")), 200)
    assert (device["name"], device["pac"], device["prototype"], device["location"]["lat"]) == \
        ("valve one", PAC, True, 43.6)
    browser.open("/console/devices/new")
    browser.find("#id").send_keys(ident)
    browser.find("#name").send_keys("again")
    browser.find("#pac").send_keys(PAC)
    Select(browser.find("#deviceTypeId")).select_by_visible_text("valves")
    browser.submit("#create-device")
    assert browser.text("#id-error") == "Device id: already exists"


def test_edit_and_transfer_series_from_the_filter_and_too_long_a_file(site, browser, tmp_path):
    tenant = site.tenant("Edit Co")
    source_type = site.run(make_device_type(tenant.client, tenant, name="first"))
    site.run(make_device_type(tenant.client, tenant, name="second"))
    ids = fresh_ids(3)
    make_devices(site, tenant.client, source_type, ids)
    browser.login(site.person([(tenant.group, ADMIN)]))

    browser.open(f"/console/devices/series/edit?deviceTypeId={source_type}")
    Select(browser.find("#automaticRenewal")).select_by_value("false")
    Select(browser.find("#prototype")).select_by_value("true")
    browser.check_plain()
    browser.submit("#dry-run")
    assert len(table(browser, "#accepted-rows")) == 3
    browser.submit("#run")
    browser.wait(lambda: browser.text("#job-state") == "done", 20, "the edit job")
    devices = [check(site.run(tenant.client.get(f"/devices/{i}")), 200) for i in ids]
    assert [(d["name"], d["automaticRenewal"], d["prototype"]) for d in devices] == \
        [(f"dev {i}", False, True) for i in ids], "names kept, the two flags set on every device"

    browser.open(f"/console/devices/series/transfer?deviceTypeId={source_type}")
    Select(browser.find("#deviceTypeId")).select_by_visible_text("second")
    browser.submit("#dry-run")
    browser.submit("#run")
    browser.wait(lambda: browser.text("#job-state") == "done", 20, "the transfer job")
    moved = {check(site.run(tenant.client.get(f"/devices/{i}")), 200)["deviceType"]["id"] for i in ids}
    assert moved != {source_type} and len(moved) == 1

    browser.open("/console/devices/series/delete")
    browser.find("#source-file").click()
    upload(browser, tmp_path / "huge.csv", "".join(f"{n:X}\n" for n in range(100_001)).encode())
    browser.submit("#dry-run")
    assert "line 100001: more than 100000 rows" in browser.text("#series-error")
    browser.check_plain()
