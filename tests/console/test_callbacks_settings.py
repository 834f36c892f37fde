"""Callbacks with `channelSettings` through the console's form in a real browser: an MQTT and a KAFKA callback
created with the fields of their channel, an error of the API placed beside the field it names, the stored
settings read back through the API (secrets masked), and an edit that does not re-type the password keeps
the stored one (opened from the database), while a re-typed one replaces it; the Event Hubs form's fields."""
from __future__ import annotations

import uuid

import pytest
from selenium.webdriver.support.ui import Select

from backhaul.callback_secrets import MASK
from backhaul.secretbox import keyring
from oss.profiles import ADMIN
from tests.api_support import check, make_device_type
from tests.console.test_device_types import api_get, type_and

pytestmark = pytest.mark.timeout(180)
MQTT_PASSWORD = "mqtt-secret-0451"
SASL_PASSWORD = "sasl-secret-0452"


def stored_secrets(site, callback_id: str) -> dict[str, str]:
    row = site.run(site.env.pool.fetchrow("SELECT channel_secrets FROM callbacks WHERE id = $1", callback_id))
    return {path: keyring().open(sealed) for path, sealed in (row["channel_secrets"] or {}).items()}


def only_callback(site, tenant, type_id: str) -> dict:
    [callback] = check(api_get(site, tenant.client, f"/device-types/{type_id}/callbacks"), 200)["data"]
    return callback


def test_an_mqtt_callback_is_created_an_error_shown_at_its_field_and_edited_keeping_its_password(site, browser):
    tenant = site.tenant(f"Mqtt {uuid.uuid4().hex[:6]}")
    type_id = site.run(make_device_type(tenant.client, tenant))
    browser.login(site.person([(tenant.group, ADMIN)]))
    browser.open(f"/console/device-types/{type_id}/callbacks")
    browser.submit("#new-mqtt")
    assert browser.finds("#cs-host") and not browser.finds("#cs-bootstrapServers"), "only MQTT's fields"
    assert browser.find("#cs-password").get_attribute("type") == "password"
    browser.find("#cs-host").send_keys("127.0.0.1")
    browser.find("#cs-port").send_keys("1883")
    browser.find("#cs-username").send_keys("backhaul")
    browser.find("#cs-password").send_keys(MQTT_PASSWORD)
    browser.find("#cs-topic").send_keys("sigfox/#")
    Select(browser.find("#cs-qos")).select_by_value("0")
    Select(browser.find("#contentType")).select_by_value("application/json")
    browser.find("#bodyTemplate").send_keys('{"device": "{device}", "data": "{data}"}')
    # Live check while typing, then the refused save: the error sits beside the topic field.
    browser.wait_css("#callback-problems .problem[data-field='channelSettings.topic']")
    browser.submit("#save-callback")
    beside = browser.find("#cs-topic-error")
    assert beside.get_attribute("data-field") == "channelSettings.topic" and "wildcards" in beside.text
    assert "cs-topic-error" in browser.find("#cs-topic").get_attribute("aria-describedby")
    assert not browser.finds("#cs-host-error")
    browser.check_plain()
    browser.shot("callback-mqtt-error")
    assert check(api_get(site, tenant.client, f"/device-types/{type_id}/callbacks"), 200)["data"] == []
    type_and(browser, "#cs-topic", "sigfox/{deviceTypeId}/{device}")
    browser.wait(lambda: "No problem found" in browser.text("#callback-problems"), what="the fixed topic")
    browser.submit("#save-callback")
    browser.wait(lambda: "Callback created" in browser.text())

    stored = only_callback(site, tenant, type_id)
    assert stored["channel"] == "MQTT" and stored["contentType"] == "application/json"
    assert stored["channelSettings"] == {"host": "127.0.0.1", "port": 1883, "tls": False, "username": "backhaul",
                                         "password": MASK, "topic": "sigfox/{deviceTypeId}/{device}", "qos": 0,
                                         "protocol": "5"}
    assert stored_secrets(site, stored["id"]) == {"password": MQTT_PASSWORD}
    # The edit form shows the mask; saving without re-typing keeps the stored password.
    assert browser.find("#cs-password").get_attribute("value") == MASK
    assert browser.find("#cs-host").get_attribute("value") == "127.0.0.1"
    browser.check_plain()
    browser.shot("callback-mqtt")
    type_and(browser, "#cs-topic", "sigfox/{device}")
    browser.submit("#save-callback")
    browser.wait(lambda: "Saved." in browser.text())
    assert only_callback(site, tenant, type_id)["channelSettings"]["topic"] == "sigfox/{device}"
    assert stored_secrets(site, stored["id"]) == {"password": MQTT_PASSWORD}, "kept when not re-typed"
    type_and(browser, "#cs-password", "a-new-password-77")
    browser.submit("#save-callback")
    browser.wait(lambda: "Saved." in browser.text())
    assert stored_secrets(site, stored["id"]) == {"password": "a-new-password-77"}, "re-typed: replaced"


def test_a_kafka_callback_with_sasl_its_server_error_at_its_field_then_the_event_hubs_form(site, browser):
    tenant = site.tenant(f"Kafka {uuid.uuid4().hex[:6]}")
    type_id = site.run(make_device_type(tenant.client, tenant))
    browser.login(site.person([(tenant.group, ADMIN)]))
    browser.open(f"/console/device-types/{type_id}/callbacks/new?channel=KAFKA")
    assert not browser.finds("#cs-host") and not browser.finds("#url"), "only KAFKA's fields"
    browser.find("#cs-bootstrapServers").send_keys("127.0.0.1:9092\nno-port-here")
    browser.find("#cs-topic").send_keys("sigfox-{deviceTypeId}")
    Select(browser.find("#cs-sasl-mechanism")).select_by_value("SCRAM-SHA-512")
    browser.find("#cs-sasl-username").send_keys("backhaul")
    browser.find("#cs-sasl-password").send_keys(SASL_PASSWORD)
    browser.find("#bodyTemplate").send_keys("{device};{seqNumber};{data}")
    browser.submit("#save-callback")
    beside = browser.find("#cs-bootstrapServers-error")
    assert beside.get_attribute("data-field") == "channelSettings.bootstrapServers[1]"
    assert "must be host:port" in beside.text
    assert check(api_get(site, tenant.client, f"/device-types/{type_id}/callbacks"), 200)["data"] == []
    type_and(browser, "#cs-bootstrapServers", "127.0.0.1:9092")
    browser.submit("#save-callback")
    browser.wait(lambda: "Callback created" in browser.text())

    stored = only_callback(site, tenant, type_id)
    assert stored["channel"] == "KAFKA" and stored["bodyTemplate"] == "{device};{seqNumber};{data}"
    assert stored["channelSettings"] == {"bootstrapServers": ["127.0.0.1:9092"], "topic": "sigfox-{deviceTypeId}",
                                         "tls": False, "sasl": {"mechanism": "SCRAM-SHA-512",
                                                                "username": "backhaul", "password": MASK}}
    assert stored_secrets(site, stored["id"]) == {"sasl.password": SASL_PASSWORD}
    browser.find("#cs-tls").click()
    browser.submit("#save-callback")
    browser.wait(lambda: "Saved." in browser.text())
    assert only_callback(site, tenant, type_id)["channelSettings"]["tls"] is True
    assert stored_secrets(site, stored["id"]) == {"sasl.password": SASL_PASSWORD}, "kept when not re-typed"
    browser.open(f"/console/device-types/{type_id}/callbacks")
    assert "127.0.0.1:9092 sigfox-{deviceTypeId}" in browser.text("#callbacks")
    # Event Hubs: its own fields, the connection string a secret, TLS on by default.
    browser.submit("#new-azure_event_hubs")
    assert browser.find("#cs-connectionString").get_attribute("type") == "password"
    assert browser.find("#cs-tls").is_selected() and not browser.finds("#cs-sasl-mechanism")
    browser.check_plain()
