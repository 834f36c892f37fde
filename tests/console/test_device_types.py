"""Device types and their callbacks in a real browser: create a device type, a payloadConfig and a callback
template refused while typing with the error at its line and column, saved once fixed and read back through
the API; enable/disable; send test against a local receiver; the undelivered log and its replay through a
real delivery worker; another tenant's device type and callback are not found."""
from __future__ import annotations

import os
import time
import uuid

import pytest
from aiohttp import web
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from backhaul import settings as settings_module
from backhaul.kafka import ensure_topics
from callback_language.positions import place
from oss import checks
from oss.profiles import ADMIN
from program.supervised import WorkerProcess
from schemas.deliveries import http_request, new_delivery
from tests.api_support import check, dsn_for, make_device_type
from tests.conftest import LOOPBACK_RECEIVERS, Receiver

pytestmark = pytest.mark.timeout(180)
BAD_GRAMMAR = "temp::uint:8\nhum::uint:99"
GOOD_GRAMMAR = "temp::uint:8\nhum::uint:16"
BAD_BODY = "device={device}\ntemp={customData#temp} seq={seqNum}"
GOOD_BODY = "device={device}\ntemp={customData#temp} seq={seqNumber}"


def api_get(site, client, path: str):
    return site.run(client.get(path))


def type_and(browser, css: str, text: str) -> None:
    field = browser.find(css)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)


def test_a_device_type_is_created_with_its_grammar_checked_while_typing(site, browser):
    tenant = site.tenant(f"Types {uuid.uuid4().hex[:6]}")
    browser.login(site.person([(tenant.group, ADMIN)]))
    browser.open("/console/device-types")
    browser.check_plain()
    browser.shot("device-types")
    browser.submit("#new-device-type")
    browser.find("#name").send_keys("Thermometer")
    Select(browser.find("#groupId")).select_by_value(tenant.group)
    Select(browser.find("#contractId")).select_by_value(tenant.contract)
    Select(browser.find("#payloadType")).select_by_value("3")
    browser.find("#payloadConfig").send_keys(BAD_GRAMMAR)
    # The error the API's own check finds, placed at its line and column, with a caret under the place.
    error = checks.grammar_errors(BAD_GRAMMAR)[0]
    where = place(BAD_GRAMMAR, error.position)
    assert where.line == 2
    shown = browser.wait_css(f"#payload-problems .problem[data-field=payloadConfig][data-line='{where.line}']"
                             f"[data-column='{where.column}']")
    assert error.message in shown.text and f"line 2, column {where.column}" in shown.text
    caret = browser.find("#payload-problems pre.caret").text.split("\n")
    assert caret == [where.text, where.caret]
    type_and(browser, "#payloadConfig", GOOD_GRAMMAR)
    browser.wait(lambda: "No problem found" in browser.text("#payload-problems"), what="the fixed grammar")
    browser.submit("#save-type")
    browser.wait(lambda: "Device type created" in browser.text())
    browser.check_plain()
    browser.shot("device-type")
    ident = browser.text("#type-id")
    stored = check(api_get(site, tenant.client, f"/device-types/{ident}"), 200)
    assert (stored["name"], stored["payloadType"], stored["payloadConfig"]) == ("Thermometer", 3, GOOD_GRAMMAR)
    assert stored["group"]["id"] == tenant.group
    # Listed, found by its name, and edited through the page.
    browser.open("/console/device-types?name=thermo")
    assert [r.get_attribute("data-id") for r in browser.finds("#device-types tbody tr")] == [ident]
    browser.open(f"/console/device-types/{ident}")
    type_and(browser, "#description", "in the cellar")
    browser.submit("#save-type")
    browser.wait(lambda: "Saved." in browser.text())
    assert check(api_get(site, tenant.client, f"/device-types/{ident}"), 200)["description"] == "in the cellar"
    browser.submit("#delete-type")
    assert browser.driver.current_url.endswith("/console/device-types")
    check(api_get(site, tenant.client, f"/device-types/{ident}"), 404)


def test_a_callback_template_error_is_shown_at_its_position_then_saved_tested_and_toggled(site, browser):
    tenant = site.tenant(f"Hooks {uuid.uuid4().hex[:6]}")
    type_id = site.run(make_device_type(tenant.client, tenant, payloadType=3, payloadConfig=GOOD_GRAMMAR))
    receiver = site.run(Receiver().start())
    try:
        browser.login(site.person([(tenant.group, ADMIN)]))
        browser.open(f"/console/device-types/{type_id}/callbacks")
        browser.check_plain()
        browser.shot("callbacks")
        browser.submit("#new-url")
        browser.find("#url").send_keys(f"{receiver.url}/hook/{{device}}")
        Select(browser.find("#contentType")).select_by_value("text/plain")
        browser.find("#bodyTemplate").send_keys(BAD_BODY)
        # While typing: the unknown variable on line 2, where the API's check puts it.
        offset = BAD_BODY.index("{seqNum}")
        where = place(BAD_BODY, offset)
        shown = browser.wait_css(f"#callback-problems .problem[data-field=bodyTemplate][data-line='2']"
                                 f"[data-column='{where.column}']")
        assert "unknown variable 'seqNum'" in shown.text and "did you mean 'seqNumber'" in shown.text
        assert browser.find("#callback-problems pre.caret").text.split("\n") == [where.text, where.caret]
        browser.check_plain()
        browser.shot("callback-error")
        # Saving it anyway is refused by the API, and the page places the error the same way.
        browser.submit("#save-callback")
        assert browser.find("#callback-problems .problem[data-field=bodyTemplate]").get_attribute("data-line") == "2"
        assert check(api_get(site, tenant.client, f"/device-types/{type_id}/callbacks"), 200)["data"] == []
        type_and(browser, "#bodyTemplate", GOOD_BODY)
        browser.wait(lambda: "No problem found" in browser.text("#callback-problems"), what="the fixed body")
        browser.submit("#save-callback")
        browser.wait(lambda: "Callback created" in browser.text())
        browser.check_plain()
        browser.shot("callback-edit")
        cb_id = browser.text("#callback-id")
        [stored] = check(api_get(site, tenant.client, f"/device-types/{type_id}/callbacks"), 200)["data"]
        assert (stored["id"], stored["channel"], stored["callbackType"], stored["callbackSubtype"]) == \
            (cb_id, "URL", 0, 2)
        assert stored["bodyTemplate"] == GOOD_BODY and stored["contentType"] == "text/plain"
        assert stored["enabled"] is True

        # Send test: the saved callback, sample values, to the local receiver; the status is shown.
        browser.find("#send-test").click()
        status = browser.wait(lambda: browser.find("#test-status").text.strip() or None, 15, "the test's status")
        assert status == "200"
        [got] = receiver.requests
        assert got.path == "/hook/00AB12CD" and got.body == b"device=00AB12CD\ntemp=42 seq=123"
        assert got.headers["webhook-id"].startswith("test-")

        # Disable, then enable: the API says the same.
        browser.submit("#toggle-enabled")
        browser.wait(lambda: "Disabled." in browser.text())
        assert check(api_get(site, tenant.client, f"/device-types/{type_id}/callbacks"), 200)["data"][0]["enabled"] \
            is False
        browser.submit("#toggle-enabled")
        browser.wait(lambda: "Enabled." in browser.text())
        assert check(api_get(site, tenant.client, f"/device-types/{type_id}/callbacks"), 200)["data"][0]["enabled"] \
            is True
    finally:
        site.run(receiver.stop())


def test_every_channel_can_be_created_and_a_bidir_callback_made_the_downlink_one(site, browser):
    tenant = site.tenant(f"Channels {uuid.uuid4().hex[:6]}")
    type_id = site.run(make_device_type(tenant.client, tenant))
    browser.login(site.person([(tenant.group, ADMIN)]))
    # BATCH_URL, DATA/BIDIR
    browser.open(f"/console/device-types/{type_id}/callbacks/new?channel=BATCH_URL")
    Select(browser.find("#type")).select_by_value("0/3")
    browser.find("#url").send_keys("http://127.0.0.1:9/batch")
    browser.find("#linePattern").send_keys("{device};{data};{ack")
    column = place("{device};{data};{ack", "{device};{data};{ack".index("{ack")).column
    shown = browser.wait_css(f"#callback-problems .problem[data-field=linePattern][data-column='{column}']")
    assert "is not closed" in shown.text
    type_and(browser, "#linePattern", "{device};{data};{ack}")
    browser.wait(lambda: "No problem found" in browser.text("#callback-problems"))
    browser.submit("#save-callback")
    browser.wait(lambda: "Callback created" in browser.text())
    browser.submit("#make-downlink")
    browser.wait(lambda: "downlink callback" in browser.text("#callback-state"))
    # EMAIL, SERVICE/STATUS
    browser.open(f"/console/device-types/{type_id}/callbacks/new?channel=EMAIL")
    Select(browser.find("#type")).select_by_value("1/0")
    browser.find("#recipient").send_keys("ops@example.com")
    browser.find("#subject").send_keys("battery of {device}")
    browser.find("#message").send_keys("temp {temp}, batt {batt}")
    browser.wait(lambda: "No problem found" in browser.text("#callback-problems"))
    browser.submit("#save-callback")
    browser.wait(lambda: "Callback created" in browser.text())
    got = {(c["channel"], c["callbackType"], c.get("callbackSubtype")): c for c in
           check(api_get(site, tenant.client, f"/device-types/{type_id}/callbacks"), 200)["data"]}
    assert set(got) == {("BATCH_URL", 0, 3), ("EMAIL", 1, 0)}
    assert got[("BATCH_URL", 0, 3)]["downlinkHook"] is True
    assert got[("BATCH_URL", 0, 3)]["linePattern"] == "{device};{data};{ack}"
    assert got[("EMAIL", 1, 0)]["message"] == "temp {temp}, batt {batt}"
    # Delete the e-mail one from its page: the list and the API no longer have it.
    browser.open(f"/console/device-types/{type_id}/callbacks/{got[('EMAIL', 1, 0)]['id']}")
    browser.submit("#delete-callback")
    assert "Callback deleted." in browser.text()
    assert [cb["id"] for cb in check(api_get(site, tenant.client, f"/device-types/{type_id}/callbacks"), 200)["data"]] \
        == [got[("BATCH_URL", 0, 3)]["id"]]


def test_another_tenants_device_type_and_callback_are_not_found(site, browser):
    owner = site.tenant(f"Owner {uuid.uuid4().hex[:6]}")
    other = site.tenant(f"Other {uuid.uuid4().hex[:6]}")
    type_id = site.run(make_device_type(owner.client, owner))
    cb_id = check(site.run(owner.client.post(f"/device-types/{type_id}/callbacks", {
        "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
        "url": "http://127.0.0.1:9/x", "httpMethod": "GET"})), 201)["id"]
    other_type = site.run(make_device_type(other.client, other))
    browser.login(site.person([(other.group, ADMIN)]))
    for path in (f"/console/device-types/{type_id}", f"/console/device-types/{type_id}/callbacks",
                 f"/console/device-types/{type_id}/callbacks/{cb_id}",
                 f"/console/device-types/{type_id}/callbacks/{cb_id}/undelivered",
                 f"/console/device-types/{other_type}/callbacks/{cb_id}"):
        browser.open(path)
        assert "Not found (404)" in browser.text(), path
    # Nor does it list the owner's type.
    browser.open("/console/device-types")
    assert [r.get_attribute("data-id") for r in browser.finds("#device-types tbody tr")] == [other_type]


def test_undelivered_callbacks_are_listed_and_replayed_to_the_receiver(site, browser, tmp_path, monkeypatch):
    """The entries are written as the store writes them (the delivery failed, its retries ran out); a
    relay and a delivery worker on the site's database then deliver the replays to the receiver, which
    answers now."""
    tenant = site.tenant(f"Replay {uuid.uuid4().hex[:6]}")
    type_id = site.run(make_device_type(tenant.client, tenant))
    receiver = site.run(Receiver().start())
    prefix = f"t{uuid.uuid4().hex[:10]}."
    monkeypatch.setenv("BACKHAUL_TOPIC_PREFIX", prefix)
    settings_module.settings.cache_clear()
    worker = None
    try:
        cb_id = check(site.run(tenant.client.post(f"/device-types/{type_id}/callbacks", {
            "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
            "url": f"{receiver.url}/up", "httpMethod": "POST", "bodyTemplate": "d={device}"})), 201)["id"]
        now = int(time.time() * 1000)
        devices = ["0000A1", "0000A2", "0000A3"]
        site.run(_undelivered(site, tenant.group, type_id, cb_id, receiver.url, devices, now))
        site.run(ensure_topics())
        env = {"BACKHAUL_TOPIC_PREFIX": prefix, "BACKHAUL_DATABASE_URL": dsn_for(site.database),
               "BACKHAUL_CALLBACK_ALLOW_NETWORKS": LOOPBACK_RECEIVERS, "BACKHAUL_RETRY_SCHEDULE_S": "1,1,1,1,1",
               "BACKHAUL_RETRY_JITTER": "0"}
        worker = WorkerProcess("relay,delivery", {**os.environ, **env}, tmp_path / "worker.log").start()
        site.run(worker.wait_ready())

        browser.login(site.person([(tenant.group, ADMIN)]))
        browser.open(f"/console/device-types/{type_id}/callbacks/{cb_id}/undelivered")
        rows = browser.finds("#undelivered tbody tr")
        assert [r.get_attribute("data-device") for r in rows] == list(reversed(devices))  # newest first
        browser.check_plain()
        browser.shot("undelivered")
        # One entry while the receiver still fails: the replay is a delivery with retries of its own, so once
        # the receiver works again the entry arrives.
        receiver.behaviour = failing
        browser.submit(f"#undelivered tr[data-device='{devices[0]}'] button")
        assert browser.text("#replayed") == "1 sent again."
        assert len(site.run(receiver.wait_for(1, 30, "/up"))) >= 1
        receiver.behaviour = None
        replayed_ok = site.run(receiver.wait_for(2, 30, "/up"))
        assert [r.body for r in replayed_ok] == [f"d={devices[0]}".encode()] * len(replayed_ok)
        assert len(replayed_ok) >= 2
        # Then every one shown: the one already replayed is not sent twice.
        before = len(receiver.requests)
        browser.submit("#replay-all")
        assert browser.text("#replayed") == "2 sent again."
        got = site.run(receiver.wait_for(before + 2, 30, "/up"))[before:]
        assert sorted(r.body for r in got) == sorted(f"d={d}".encode() for d in devices[1:])
        assert {r.headers["webhook-id"] for r in receiver.requests} == {f"m{d}/{cb_id}" for d in devices}
    finally:
        if worker is not None:
            worker.stop()
        site.run(receiver.stop())
        settings_module.settings.cache_clear()


async def failing(request, received):
    return web.Response(status=500, text="down")


async def _undelivered(site, group: str, type_id: str, cb_id: str, url: str, devices: list[str], now: int) -> None:
    registrations = {}
    for device in devices:  # the list shows the history of registered devices only
        check(await site.env.root.post("/devices/", {"id": device, "name": device, "pac": "0" * 16,
                                                     "deviceTypeId": type_id}), 201)
        registrations[device] = await site.env.pool.fetchval("SELECT registration_id FROM devices WHERE id = $1",
                                                             device)
    rows = []
    for i, device in enumerate(devices):
        record = {"id": f"m{device}", "device": device, "time": now - 1000 * (len(devices) - i), "data": "0102",
                  "snr": 12.0, "groupId": group}
        delivery = new_delivery(record, callback_id=cb_id, kind="DATA", channel="URL", device_type_id=type_id,
                                message_id=record["id"], origin_ms=record["time"], created_ms=record["time"],
                                variables={"device": device})
        delivery["request"] = http_request("POST", f"{url}/up", {}, f"d={device}".encode(),
                                           "application/x-www-form-urlencoded")
        rows.append((delivery["id"], device, type_id, group, cb_id, record["id"], record["time"], "0102", 12.0, 500,
                     "HTTP 500", {"url": f"{url}/up", "method": "POST", "error": "HTTP 500"}, {}, delivery,
                     registrations[device]))
    await site.env.pool.executemany(
        "INSERT INTO undelivered_callbacks(delivery_id, device_id, device_type_id, group_id, callback_id, message_id, "
        "time, data, snr, status, message, callback, parameters, delivery, registration_id) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)", rows)
