"""The console's table of channel settings controls (console/channel_fields.py) against the API's validators:
every channel with settings has an entry naming exactly its members, secrets are the declared ones, and a
form filled in gives settings the validator accepts (and back)."""
from __future__ import annotations

import pytest

from backhaul.callback_secrets import MASK, SETTINGS_SECRETS
from console.callback_form import CHANNELS, form_body, placed
from console.channel_fields import FIELDS, fields_of, is_secret, settings_body, settings_values
from oss.channel_settings import MEMBERS, VALIDATORS, kafka


@pytest.mark.parametrize("channel", sorted(VALIDATORS))
def test_every_channel_with_settings_has_an_entry_naming_exactly_its_validators_members(channel):
    known = set(MEMBERS[channel])
    names = [f.name for f in fields_of(channel)]
    assert names, f"{channel} has a validator but no entry in console/channel_fields.py FIELDS"
    assert {n.split(".")[0] for n in names} == known
    assert len(names) == len(set(names))
    assert channel in CHANNELS, "the form's channel choice lists it"


def test_nested_members_and_secrets_match_the_declarations():
    assert {f.name.removeprefix("sasl.") for f in fields_of("KAFKA") if f.name.startswith("sasl.")} == \
        set(kafka.SASL_KNOWN)
    for channel, secrets in SETTINGS_SECRETS.items():
        if channel in FIELDS:
            assert {f.name for f in fields_of(channel) if is_secret(channel, f)} == set(secrets)
    assert set(FIELDS) <= set(VALIDATORS), "an entry for a channel the API does not know"
    assert set(MEMBERS) == set(VALIDATORS)


MQTT_FORM = {"channelSettings.host": "broker.example.com", "channelSettings.port": "8883",
             "channelSettings.tls": "on", "channelSettings.caCertificate": "",
             "channelSettings.username": "backhaul", "channelSettings.password": "s3cret-pass",
             "channelSettings.topic": "sigfox/{device}", "channelSettings.qos": "0",
             "channelSettings.protocol": "3.1.1"}
KAFKA_FORM = {"channelSettings.bootstrapServers": "k1.example.com:9093\r\n k2.example.com:9093\n",
              "channelSettings.topic": "sigfox-{deviceTypeId}", "channelSettings.sasl.mechanism": "SCRAM-SHA-512",
              "channelSettings.sasl.username": "backhaul", "channelSettings.sasl.password": "pw-123456"}


def test_a_filled_form_gives_settings_the_validator_accepts_with_types_and_groups():
    mqtt = settings_body(MQTT_FORM, "MQTT", creating=True)
    assert mqtt == {"host": "broker.example.com", "port": 8883, "tls": True, "username": "backhaul",
                    "password": "s3cret-pass", "topic": "sigfox/{device}", "qos": 0, "protocol": "3.1.1"}
    assert VALIDATORS["MQTT"](mqtt) == []
    got = settings_body(KAFKA_FORM, "KAFKA", creating=True)
    assert got == {"bootstrapServers": ["k1.example.com:9093", "k2.example.com:9093"],
                   "topic": "sigfox-{deviceTypeId}", "tls": False,
                   "sasl": {"mechanism": "SCRAM-SHA-512", "username": "backhaul", "password": "pw-123456"}}
    assert VALIDATORS["KAFKA"](got) == []
    assert "sasl" not in settings_body({**KAFKA_FORM, "channelSettings.sasl.mechanism": "",
                                        "channelSettings.sasl.username": "", "channelSettings.sasl.password": ""},
                                       "KAFKA", creating=True)


def test_stored_settings_shown_then_sent_back_keep_the_mask_and_an_emptied_secret_is_removed_on_edit():
    stored = {**settings_body(MQTT_FORM, "MQTT", creating=True), "password": MASK}
    values = settings_values("MQTT", stored)
    assert values["channelSettings.password"] == MASK and values["channelSettings.tls"] == "on"
    assert settings_body(values, "MQTT", creating=False) == stored, "unchanged form, unchanged settings"
    assert settings_body({**values, "channelSettings.password": ""}, "MQTT", creating=False)["password"] is None
    assert "password" not in settings_body({**values, "channelSettings.password": ""}, "MQTT", creating=True)
    kafka_values = settings_values("KAFKA", {"bootstrapServers": ["a:1", "b:2"], "topic": "t",
                                             "sasl": {"mechanism": "PLAIN", "username": "u", "password": MASK}})
    assert kafka_values["channelSettings.bootstrapServers"] == "a:1\nb:2"
    assert kafka_values["channelSettings.sasl.password"] == MASK


def test_the_form_body_carries_the_settings_and_the_body_fields_and_errors_land_on_their_control():
    body = form_body({"channel": "KAFKA", "type": "0/2", "enabled": "on", "bodyTemplate": "{device}",
                      "contentType": "text/plain", **KAFKA_FORM}, creating=True)
    assert body["channel"] == "KAFKA" and body["bodyTemplate"] == "{device}" and body["contentType"] == "text/plain"
    assert body["channelSettings"]["topic"] == "sigfox-{deviceTypeId}"
    assert "url" not in body and "sendSni" not in body
    assert placed("channelSettings.bootstrapServers[1]", "must be host:port", None, {}).control == \
        "channelSettings.bootstrapServers"
    assert placed("channelSettings.sasl.password", "is required", None, {}).control == "channelSettings.sasl.password"
    assert placed("callbackSubtype", "x", None, {}).control == "type"
