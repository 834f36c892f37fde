"""`channelSettings` (issue 14): per-channel validation naming the member, secret members split off,
sealed, masked and kept on update as URL credentials are, templated members compiled."""
from __future__ import annotations

import pytest

from backhaul.callback_secrets import MASK, join_settings, open_callback, seal_callback, split_settings
from backhaul.destinations import DestinationPolicy
from backhaul.secretbox import Keyring, new_key
from callback_language.templates import CallbackSpec, TemplateError, compile_callback
from oss.api.callbacks import callback_body, callback_problems
from oss.channel_settings import settings_errors
from oss.secret_fields import parts_for_create, parts_for_update, shown

BOX = Keyring([new_key()], "test")
MQTT = {"host": "broker.example.com", "port": 8883, "tls": True, "username": "backhaul", "password": "s3cret-mqtt",
        "topic": "sigfox/{deviceTypeId}/{device}", "qos": 1, "protocol": "5"}
KAFKA = {"bootstrapServers": ["k1.example.com:9093", "[::1]:9092"], "topic": "sigfox-{deviceTypeId}", "tls": True,
         "sasl": {"mechanism": "SCRAM-SHA-512", "username": "backhaul", "password": "s3cret-kafka"}}


def messages(channel, settings):
    return {e.field: e.message for e in settings_errors(channel, settings)}


def test_valid_settings_pass():
    assert messages("MQTT", MQTT) == {}
    assert messages("MQTT", {"host": "10.0.0.1", "topic": "t"}) == {}
    assert messages("KAFKA", KAFKA) == {}
    assert messages("KAFKA", {"bootstrapServers": ["k:9092"], "topic": "t"}) == {}


@pytest.mark.parametrize("change, field, text", [
    ({"topic": None}, "channelSettings.topic", "is required"),
    ({"host": None}, "channelSettings.host", "is required"),
    ({"host": "mqtt://broker:1883"}, "channelSettings.host", "host name"),
    ({"port": 0}, "channelSettings.port", "between 1 and 65535"),
    ({"port": "1883"}, "channelSettings.port", "integer"),
    ({"qos": 2}, "channelSettings.qos", "one of 0, 1"),
    ({"protocol": "3.1"}, "channelSettings.protocol", "one of 3.1.1, 5"),
    ({"tls": "yes"}, "channelSettings.tls", "boolean"),
    ({"topic": "sigfox/+/x"}, "channelSettings.topic", "wildcards"),
    ({"username": None}, "channelSettings.password", "needs a username"),
    ({"retain": True}, "channelSettings.retain", "not a member"),
    ({"tls": False, "caCertificate": "-----BEGIN CERTIFICATE-----x"}, "channelSettings.caCertificate", "tls"),
])
def test_mqtt_errors_name_the_member(change, field, text):
    settings = {k: v for k, v in {**MQTT, **change}.items() if v is not None}
    found = messages("MQTT", settings)
    assert field in found and text in found[field], found


@pytest.mark.parametrize("change, field, text", [
    ({"bootstrapServers": None}, "channelSettings.bootstrapServers", "is required"),
    ({"bootstrapServers": []}, "channelSettings.bootstrapServers", "list of 1 to 20"),
    ({"bootstrapServers": ["k1"]}, "channelSettings.bootstrapServers[0]", "host:port"),
    ({"bootstrapServers": ["k1:99999"]}, "channelSettings.bootstrapServers[0]", "host:port"),
    ({"topic": None}, "channelSettings.topic", "is required"),
    ({"topic": "a/b"}, "channelSettings.topic", "letters, digits"),
    ({"sasl": {"mechanism": "GSSAPI", "username": "u", "password": "p"}}, "channelSettings.sasl.mechanism",
     "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ({"sasl": {"mechanism": "PLAIN", "username": "u"}}, "channelSettings.sasl.password", "is required"),
    ({"sasl": "PLAIN"}, "channelSettings.sasl", "object"),
])
def test_kafka_errors_name_the_member(change, field, text):
    settings = {k: v for k, v in {**KAFKA, **change}.items() if v is not None}
    found = messages("KAFKA", settings)
    assert field in found and text in found[field], found


def test_settings_only_where_the_channel_has_them():
    assert messages("MQTT", None) == {"channelSettings": "is required for MQTT callbacks"}
    assert "channelSettings" in messages("URL", {"host": "x"})
    assert messages("URL", None) == {}


def test_secret_members_split_and_joined():
    clear, secret = split_settings("KAFKA", KAFKA)
    assert secret == {"sasl.password": "s3cret-kafka"}
    assert "password" not in clear["sasl"] and KAFKA["sasl"]["password"] == "s3cret-kafka", "input untouched"
    assert join_settings(clear, secret) == KAFKA


def test_sealed_at_rest_and_opened_by_the_worker():
    row = seal_callback({"channel": "MQTT", "channel_settings": MQTT, "url": None}, BOX)
    assert "password" not in row["channel_settings"]
    assert "s3cret-mqtt" not in repr(row)
    opened = open_callback(row, BOX)
    assert opened.settings_with(row["channel_settings"]) == MQTT
    assert "s3cret" not in repr(opened)
    assert opened.scrub("auth failed for s3cret-mqtt") == f"auth failed for {MASK}"


def api_row(body):
    from oss.api.callbacks import new_row
    row = new_row(body)
    parts = parts_for_create(body, row)
    columns = ("url", "http_method", "headers", "send_sni", "content_type", "line_pattern", "recipient", "subject",
               "message", "payload_config", "body_template")
    return {**dict.fromkeys(columns), **row, **parts.columns(BOX), "dead": False, "downlink_hook": False}, parts


BODY = {"channel": "MQTT", "callbackType": 0, "callbackSubtype": 2, "enabled": True, "channelSettings": MQTT,
        "bodyTemplate": '{"device": "{device}", "data": "{data}"}', "contentType": "application/json"}


def test_masked_for_writers_left_out_for_readers():
    row, parts = api_row(BODY)
    assert not parts.errors
    assert callback_body(row, writer=True)["channelSettings"] == {**MQTT, "password": MASK}
    assert "password" not in callback_body(row, writer=False)["channelSettings"]
    assert "s3cret" not in repr(row)


def test_update_keeps_masked_or_left_out_secret_on_the_same_destination():
    row, _ = api_row(BODY)
    for given in ({**MQTT, "password": MASK}, {k: v for k, v in MQTT.items() if k != "password"}):
        changes: dict = {}
        parts = parts_for_update({"channelSettings": given}, changes, row)
        assert not parts.errors and parts.settings["password"].sealed == row["channel_secrets"]["password"]
    parts = parts_for_update({"channelSettings": {**MQTT, "password": None}}, {}, row)
    assert parts.settings == {}
    parts = parts_for_update({"channelSettings": {**MQTT, "password": "new-one"}}, {}, row)
    assert parts.settings["password"].clear == "new-one"
    moved = {k: v for k, v in MQTT.items() if k != "password"} | {"host": "elsewhere.example.com"}
    parts = parts_for_update({"channelSettings": moved}, {}, row)
    assert [e.field for e in parts.errors] == ["channelSettings.password"]
    assert shown(row, writer=True)["channelSettings"]["password"] == MASK


def test_mask_where_nothing_is_stored_is_refused():
    _, parts = api_row({**BODY, "channelSettings": {**MQTT, "password": MASK}})
    assert [e.field for e in parts.errors] == ["channelSettings.password"]


def test_api_problems_name_the_member():
    policy = DestinationPolicy.parse("")
    assert callback_problems(BODY, policy) == []
    body = {**BODY, "channelSettings": {**MQTT, "qos": 2}}
    assert [e.field for e in callback_problems(body, policy)] == ["channelSettings.qos"]
    assert [e.field for e in callback_problems({**BODY, "channelSettings": None}, policy)] == ["channelSettings"]


def test_topic_compiled_as_a_template():
    spec = CallbackSpec(id="c", kind="DATA_UPLINK", channel="MQTT", body_template="{device}", settings=MQTT)
    compiled = compile_callback(spec)
    assert compiled.setting("topic").variables == {"deviceTypeId", "device"}
    with pytest.raises(TemplateError) as bad:
        compile_callback(CallbackSpec(id="c", kind="DATA_UPLINK", channel="MQTT", body_template="x",
                                      settings={**MQTT, "topic": "a/{nosuch}"}))
    assert bad.value.field == "channelSettings.topic"
    with pytest.raises(TemplateError) as bad:
        compile_callback(CallbackSpec(id="c", kind="DATA_UPLINK", channel="KAFKA", settings=KAFKA))
    assert bad.value.field == "bodyTemplate"


def test_the_readme_example_is_a_valid_mqtt_callback():
    import json

    from backhaul.settings import PROJECT_ROOT
    text = (PROJECT_ROOT / "README.md").read_text()
    start = text.index("```json", text.index("- **Channels: MQTT**")) + len("```json")
    example = json.loads(text[start:text.index("```", start)])
    example["channelSettings"]["caCertificate"] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert callback_problems(example, DestinationPolicy.parse("")) == []
