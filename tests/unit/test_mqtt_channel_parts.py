"""The MQTT channel's pieces without a broker: the delivery's `publish` (rendered topic and body, its
validation), the bulkhead key, what an error becomes in cbStatus, and a destination's repr."""
from __future__ import annotations

import asyncio
import socket
import ssl

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from backhaul.destinations import DestinationRefused
from callback_language.templates import CallbackSpec, TemplateError, compile_callback, render_publish
from schemas.deliveries import delivery_problem
from workers.channels import CHANNELS
from workers.channels.mqtt import REFUSED, Destination, _reason

SETTINGS = {"host": "Broker.Example.com", "tls": True, "username": "bh", "password": "pw-123456",
            "topic": "s/{deviceTypeId}/{device}", "qos": 1}


def compiled(**settings):
    return compile_callback(CallbackSpec(id="c", kind="DATA_UPLINK", channel="MQTT", content_type="application/json",
                                         body_template='{"d": "{device}", "s": {seqNumber}}',
                                         settings={**SETTINGS, **settings}))


def test_publish_rendered_from_topic_and_body():
    out = render_publish(compiled(), {"device": "1A2B", "deviceTypeId": "t1", "seqNumber": 7})
    assert out == {"topic": "s/t1/1A2B", "body": '{"d": "1A2B", "s": 7}', "contentType": "application/json"}


@pytest.mark.parametrize("value", ["a+b", "a#", "x\ny"])
def test_a_rendered_topic_with_a_wildcard_or_line_break_is_refused(value):
    with pytest.raises(TemplateError) as bad:
        render_publish(compiled(topic="s/{device}"), {"device": value})
    assert bad.value.field == "channelSettings.topic"


def delivery(**publish):
    return {"id": "r/c", "channel": "MQTT", "kind": "DATA", "device": "1", "recordId": "r", "origin": 1,
            "createdAt": 1, "variables": {}, "callbackId": "c", "publish": publish}


def test_a_delivery_without_its_publish_is_refused_naming_the_field():
    assert delivery_problem(delivery(topic="t", body="b", contentType="text/plain")) is None
    assert delivery_problem(delivery(topic="t", body="b")) == "publish.contentType: missing"
    no_publish = delivery()
    del no_publish["publish"]
    assert delivery_problem(no_publish) == "publish: missing"


def test_bulkhead_key_and_repr_without_the_password():
    d = Destination.of(SETTINGS)
    assert (d.port, d.protocol, d.key) == (8883, "5", "mqtt://broker.example.com:8883/bh")
    assert "pw-123456" not in repr(d)
    assert Destination.of({"host": "h"}).key == "mqtt://h:1883/"
    assert CHANNELS["MQTT"].name == "MQTT"


@pytest.mark.parametrize("exc, error_class, words", [
    (aiomqtt.MqttError("[Errno 111] Connection refused"), "connect", "Connection refused"),
    (aiomqtt.MqttError("Operation timed out"), "timeout", "timed out"),
    (asyncio.TimeoutError(), "timeout", "timed out"),
    (MqttConnectError(ReasonCode(PacketTypes.CONNACK, "Not authorized")), "other", "Not authorized"),
    (MqttConnectError(4), "other", "Bad username or password"),
    (aiomqtt.MqttCodeError(ReasonCode(PacketTypes.PUBACK, "Not authorized"), REFUSED), "other", "Not authorized"),
    (DestinationRefused("10.0.0.1 is a private address"), "destination", "destination refused"),
    (ssl.SSLCertVerificationError("certificate verify failed"), "tls", "certificate verify failed"),
    (socket.gaierror(-2, "Name or service not known"), "dns", "Name or service not known"),
])
def test_what_an_error_becomes(exc, error_class, words):
    got_class, text = _reason(exc)
    assert got_class == error_class and words in text, (got_class, text)
