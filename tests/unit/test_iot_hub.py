"""The AZURE_IOT_HUB channel's pure parts: SAS tokens (a vector computed with openssl, and properties),
the connection strings, the identity rules, the API's validator and the MQTT names the channel uses."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import parse_qs, quote_plus, unquote, unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backhaul.iot_hub import DEVICE_ID, IotHubSettingsError, events_topic, identity_of, parse_connection_string
from backhaul.key_values import ConnectionStringError
from backhaul.sas_token import SasKeyError, sas_token, signature
from oss.channel_settings import VALIDATORS, settings_errors
from workers.channels.azure_iot_hub import AzureIotHub

KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtMTIzNDU2Nzg5MA=="  # base64 of b"secret-key-for-tests-1234567890"
HUB = f"HostName=MyHub.azure-devices.net;SharedAccessKeyName=device-connect;SharedAccessKey={KEY}"
DEVICE = f"HostName=myhub.azure-devices.net;DeviceId=gateway-1;SharedAccessKey={KEY}"

# Computed outside Python:
#   printf 'myhub.azure-devices.net%2Fdevices%2Fdevice1\n1700000000' \
#     | openssl dgst -sha256 -mac HMAC -macopt key:secret-key-for-tests-1234567890 -binary | base64
VECTOR_SIG = "7thA/NlrRhRO+flPOFuJKYY6I9dw1RIsYxycA4mYSR4="


def test_the_token_matches_a_vector_computed_with_openssl() -> None:
    resource = "myhub.azure-devices.net/devices/device1"
    assert signature(resource, KEY, 1_700_000_000) == VECTOR_SIG
    assert sas_token(resource, KEY, 1_700_000_000) == (
        "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1"
        "&sig=7thA%2FNlrRhRO%2BflPOFuJKYY6I9dw1RIsYxycA4mYSR4%3D&se=1700000000")
    assert sas_token(resource, KEY, 1_700_000_000, "device-connect").endswith("&se=1700000000&skn=device-connect")


@given(resource=st.text(min_size=1, max_size=80), key=st.binary(min_size=1, max_size=64),
       expiry=st.integers(0, 2**40), policy=st.none() | st.text(min_size=1, max_size=30))
def test_a_token_reads_back_and_verifies_as_the_hub_checks_it(resource: str, key: bytes, expiry: int,
                                                              policy: str | None) -> None:
    token = sas_token(resource, base64.b64encode(key).decode(), expiry, policy)
    assert token.startswith("SharedAccessSignature ")
    fields = dict(part.split("=", 1) for part in token.removeprefix("SharedAccessSignature ").split("&"))
    assert set(fields) == {"sr", "sig", "se"} | ({"skn"} if policy else set())
    assert unquote_plus(fields["sr"]) == resource and int(fields["se"]) == expiry
    assert policy is None or unquote_plus(fields["skn"]) == policy
    expected = hmac.new(key, f"{fields['sr']}\n{fields['se']}".encode(), hashlib.sha256).digest()
    assert base64.b64decode(unquote(fields["sig"])) == expected


@given(expiry=st.integers(0, 2**40))
def test_another_key_or_expiry_signs_differently(expiry: int) -> None:
    resource = "h.azure-devices.net/devices/d"
    other = base64.b64encode(b"another key").decode()
    assert signature(resource, KEY, expiry) != signature(resource, other, expiry)
    assert signature(resource, KEY, expiry) != signature(resource, KEY, expiry + 1)


def test_a_key_that_is_not_base64_is_refused() -> None:
    with pytest.raises(SasKeyError):
        signature("r", "not base64!", 1)


def test_hub_and_device_connection_strings() -> None:
    hub = parse_connection_string(HUB)
    assert (hub.host, hub.policy, hub.device_id, hub.key) == ("myhub.azure-devices.net", "device-connect", None, KEY)
    device = parse_connection_string(f"deviceid=gateway-1; SHAREDACCESSKEY={KEY};hostname=myhub.azure-devices.net;")
    assert (device.host, device.policy, device.device_id) == ("myhub.azure-devices.net", None, "gateway-1")
    assert KEY not in repr(hub) and KEY not in repr(identity_of({"connectionString": HUB, "identity": "DEVICE"}, "AB"))


@pytest.mark.parametrize(("text", "message"), [
    ("", "is required"),
    (f"SharedAccessKeyName=p;SharedAccessKey={KEY}", "HostName is required"),
    (f"HostName=localhost;SharedAccessKeyName=p;SharedAccessKey={KEY}", "HostName must be the hub's host name"),
    ("HostName=h.azure-devices.net;SharedAccessKeyName=p", "SharedAccessKey is required"),
    ("HostName=h.azure-devices.net;SharedAccessKeyName=p;SharedAccessKey=%%%", "SharedAccessKey must be base64"),
    (f"HostName=h.azure-devices.net;SharedAccessKey={KEY}", "give SharedAccessKeyName"),
    (f"{HUB};DeviceId=d", "give SharedAccessKeyName"),
    (f"HostName=h.azure-devices.net;DeviceId=a/b;SharedAccessKey={KEY}", "DeviceId is not an IoT Hub device id"),
    (f"{HUB};SharedAccessSignature=x", "unknown key 'SharedAccessSignature'"),
    (f"{HUB};HostName=h.azure-devices.net", "HostName is given twice"),
])
def test_bad_connection_strings_name_what_is_wrong_without_the_key(text: str, message: str) -> None:
    with pytest.raises(ConnectionStringError) as caught:
        parse_connection_string(text)
    assert str(caught.value).startswith("channelSettings.connectionString: ")
    assert message in str(caught.value)
    assert KEY not in str(caught.value)


def test_identities() -> None:
    per_device = identity_of({"connectionString": HUB, "identity": "DEVICE"}, "00AB12CD")
    assert per_device.device_id == "00AB12CD" and per_device.policy == "device-connect"
    assert per_device.username == "myhub.azure-devices.net/00AB12CD/?api-version=2021-04-12"
    assert per_device.resource == "myhub.azure-devices.net/devices/00AB12CD"
    one = identity_of({"connectionString": DEVICE, "identity": "DEVICE_TYPE"}, "00AB12CD")
    assert (one.device_id, one.policy) == ("gateway-1", None)
    named = identity_of({"connectionString": HUB, "identity": "DEVICE_TYPE", "deviceId": "type-7"}, "00AB12CD")
    assert (named.device_id, named.policy) == ("type-7", "device-connect")
    for settings, message in [
        ({"connectionString": DEVICE, "identity": "DEVICE"}, "connectionString: identity DEVICE needs the hub's"),
        ({"connectionString": HUB, "identity": "DEVICE_TYPE"}, "deviceId: is required with identity DEVICE_TYPE"),
        ({"connectionString": DEVICE, "identity": "DEVICE_TYPE", "deviceId": "x"}, "deviceId: differs"),
        ({"connectionString": HUB, "identity": "DEVICE", "deviceId": "x"}, "deviceId: is only used with"),
        ({"connectionString": HUB, "identity": "GROUP"}, "identity: must be one of DEVICE, DEVICE_TYPE"),
    ]:
        with pytest.raises(IotHubSettingsError, match=f"^channelSettings.{message}"):
            identity_of(settings, "00AB12CD")


def test_the_events_topic_carries_the_property_bag_url_encoded() -> None:
    topic = events_topic("dev-1", [("$.mid", "rec/cb#1&x=y"), ("$.ct", "application/json"), ("$.ce", "utf-8"),
                                   ("callback-type", "DATA_UPLINK")])
    prefix, bag = topic[:len("devices/dev-1/messages/events/")], topic[len("devices/dev-1/messages/events/"):]
    assert prefix == "devices/dev-1/messages/events/" and "/" not in bag and "+" not in bag and "#" not in bag
    assert parse_qs(bag) == {"$.mid": ["rec/cb#1&x=y"], "$.ct": ["application/json"], "$.ce": ["utf-8"],
                             "callback-type": ["DATA_UPLINK"]}


@given(st.from_regex(DEVICE_ID, fullmatch=True))
def test_device_ids_make_topics_without_wildcards(device_id: str) -> None:
    topic = events_topic(device_id, [("$.mid", "m")])
    assert "+" not in topic and "#" not in topic and topic.count("/") == 4


def errors(settings: dict) -> list[tuple[str, str]]:
    return [(e.field, e.message) for e in settings_errors("AZURE_IOT_HUB", settings)]


def test_the_api_validator_names_the_member() -> None:
    assert "AZURE_IOT_HUB" in VALIDATORS
    assert errors({"connectionString": HUB, "identity": "DEVICE"}) == []
    assert errors({"connectionString": DEVICE, "identity": "DEVICE_TYPE", "tokenLifetime": 600, "host": "127.0.0.1",
                   "port": 18883, "tls": True, "caCertificate": "-----BEGIN CERTIFICATE-----x"}) == []
    assert errors({"connectionString": "********", "identity": "DEVICE"}) == [], "a kept secret is not re-checked"
    assert errors({}) == [("channelSettings.connectionString", "is required"), ("channelSettings.identity", "is required")]
    assert errors({"connectionString": HUB, "identity": "DEVICE", "tokenLifetime": 10, "port": 0, "tls": "yes",
                   "topic": "t"}) == [
        ("channelSettings.topic", "is not a member of these settings; expected one of connectionString, identity, "
                                  "deviceId, tokenLifetime, host, port, tls, caCertificate"),
        ("channelSettings.tokenLifetime", "must be between 300 and 604800"),
        ("channelSettings.port", "must be between 1 and 65535"),
        ("channelSettings.tls", "must be of type boolean")]
    assert errors({"connectionString": DEVICE, "identity": "DEVICE"}) == [
        ("channelSettings.connectionString", "identity DEVICE needs the hub's connection string (SharedAccessKeyName), "
                                             "not a device's")]
    assert errors({"connectionString": HUB, "identity": "DEVICE_TYPE", "deviceId": "a/b"}) == [
        ("channelSettings.deviceId", "is not an IoT Hub device id (1-128 of A-Z a-z 0-9 -.%_*?!(),:=@$')")]
    assert errors({"connectionString": HUB.replace("SharedAccessKey=", "SharedAccessKey=@"), "identity": "DEVICE"}) == [
        ("channelSettings.connectionString", "SharedAccessKey must be base64")]
    assert errors({"connectionString": HUB, "identity": "DEVICE", "tls": False, "caCertificate": "x"}) == [
        ("channelSettings.caCertificate", "is only used with tls: true")]


def delivery(device: str = "00AB12CD", webhook_id: str | None = None) -> dict:
    d = {"id": f"rec-1/cb-{device}", "device": device, "kind": "DATA_UPLINK",
         "publish": {"topic": "", "body": '{"a": 1}', "contentType": "application/json"}}
    if webhook_id:
        d["webhookId"] = webhook_id
    return d


def test_the_channel_connects_as_the_identity_with_a_valid_token() -> None:
    channel = AzureIotHub()
    before = int(time.time())
    dest = channel.destination(delivery(), {"connectionString": HUB, "identity": "DEVICE", "tokenLifetime": 600})
    assert (dest.host, dest.port, dest.tls, dest.protocol, dest.client_id) == (
        "myhub.azure-devices.net", 8883, True, "3.1.1", "00AB12CD")
    assert dest.username == "myhub.azure-devices.net/00AB12CD/?api-version=2021-04-12"
    fields = dict(p.split("=", 1) for p in (dest.password or "").removeprefix("SharedAccessSignature ").split("&"))
    assert before + 600 <= int(fields["se"]) <= int(time.time()) + 600
    assert fields["sr"] == quote_plus("myhub.azure-devices.net/devices/00AB12CD") and fields["skn"] == "device-connect"
    expected = hmac.new(base64.b64decode(KEY), f"{fields['sr']}\n{fields['se']}".encode(), hashlib.sha256).digest()
    assert base64.b64decode(unquote(fields["sig"])) == expected
    assert KEY not in repr(dest) and (dest.password or "x") not in repr(dest)
    local = channel.destination(delivery(), {"connectionString": DEVICE, "identity": "DEVICE_TYPE",
                                             "host": "127.0.0.1", "port": 18883, "tls": False})
    assert (local.host, local.port, local.tls, local.client_id) == ("127.0.0.1", 18883, False, "gateway-1")
    assert local.username == "myhub.azure-devices.net/gateway-1/?api-version=2021-04-12", "the names stay the hub's"


def test_the_message_topic_carries_the_stable_id() -> None:
    channel = AzureIotHub()
    d = delivery(webhook_id=None)
    dest = channel.destination(d, {"connectionString": HUB, "identity": "DEVICE"})
    topic, properties = channel.message(d, "first-id/cb", dest)
    assert properties is None, "MQTT 3.1.1: everything is in the topic"
    assert topic.startswith("devices/00AB12CD/messages/events/")
    assert parse_qs(topic.rsplit("/", 1)[1]) == {"$.mid": ["first-id/cb"], "$.ct": ["application/json"],
                                                 "$.ce": ["utf-8"], "callback-type": ["DATA_UPLINK"]}


async def test_a_pooled_token_is_reused_until_four_fifths_of_its_life_then_renewed(monkeypatch) -> None:
    channel = AzureIotHub()
    settings = {"connectionString": HUB, "identity": "DEVICE", "tokenLifetime": 1000}
    now = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    first = channel.destination(delivery(), settings)
    assert channel.destination(delivery(), settings) is not first, "nothing pooled yet: a new token each time"
    assert (await channel._connection(first)).destination is first  # pooled (not connected: nothing is sent)
    now[0] += 799
    assert channel.destination(delivery(), settings) is first, "the open connection's token is reused"
    assert channel.destination(delivery(), {**settings, "tokenLifetime": 900}) != first, "another lifetime: new token"
    now[0] += 2
    renewed = channel.destination(delivery(), settings)
    assert renewed.password != first.password and f"&se={int(now[0]) + 1000}&" in (renewed.password or "")
    assert (await channel._connection(renewed)).destination is renewed, "a new token: a new connection"
    other_key = HUB.replace(KEY, base64.b64encode(b"rotated").decode())
    assert channel.destination(delivery(), {**settings, "connectionString": other_key}) != renewed
    await channel.close()


async def test_connections_are_pooled_least_recently_used_first_out() -> None:
    channel = AzureIotHub()
    channel.pool_size = 2
    settings = {"connectionString": HUB, "identity": "DEVICE"}
    a, b, c = (channel.destination(delivery(device), settings) for device in ("0A", "0B", "0C"))
    for dest in (a, b):
        await channel._connection(dest)
    await channel._connection(a)  # used again: B is now the least recent
    await channel._connection(c)
    assert [channel.pooled(d.key) is not None for d in (a, b, c)] == [True, False, True]
    await channel.close()


async def test_a_test_send_renders_an_iot_hub_callback_without_publishing() -> None:
    from backhaul.destinations import DestinationPolicy
    from oss.callback_test_send import send_test

    row = {"id": "c", "channel": "AZURE_IOT_HUB", "callback_subtype": 0, "body_template": "{device}",
           "content_type": None, "channel_settings": {"identity": "DEVICE"}}
    outcome = await send_test(row, DestinationPolicy.parse(""), 1.0)
    assert not outcome.sent and "AZURE_IOT_HUB callbacks are rendered, not sent" in (outcome.error or "")
    assert outcome.request == "publish to devices/<deviceId>/messages/events/"


def test_the_readme_example_is_a_valid_callback() -> None:
    import json

    from backhaul.destinations import DestinationPolicy
    from backhaul.settings import PROJECT_ROOT
    from oss.api.callbacks import callback_problems
    text = (PROJECT_ROOT / "README.md").read_text()
    start = text.index("```json", text.index("- **Channels: Azure IoT Hub**")) + len("```json")
    example = json.loads(text[start:text.index("```", start)])
    assert callback_problems(example, DestinationPolicy.parse("")) == []


def test_the_bulkhead_is_the_hub_and_the_identity_mode() -> None:
    from types import SimpleNamespace

    from backhaul.callback_secrets import seal_callback
    from workers.credentials import CallbackCredentials

    def context(*rows: dict) -> SimpleNamespace:
        sealed = [seal_callback({"url": None, **row}) for row in rows]
        return SimpleNamespace(view=SimpleNamespace(callbacks={r["id"]: r for r in sealed}),
                               credentials=CallbackCredentials())
    ctx = context({"id": "a", "channel": "AZURE_IOT_HUB", "channel_settings": {"connectionString": HUB,
                                                                              "identity": "DEVICE"}},
                  {"id": "b", "channel": "AZURE_IOT_HUB", "channel_settings": {"connectionString": DEVICE,
                                                                              "identity": "DEVICE_TYPE"}},
                  {"id": "c", "channel": "AZURE_IOT_HUB", "channel_settings": {"connectionString": "nonsense",
                                                                              "identity": "DEVICE"}})
    channel = AzureIotHub()
    keys = [channel.endpoint({**delivery(device), "callbackId": cb}, None, ctx)  # type: ignore[arg-type]
            for cb, device in (("a", "01"), ("a", "02"), ("b", "01"), ("c", "01"), ("gone", "01"))]
    assert keys == ["azure-iot-hub://myhub.azure-devices.net:8883/DEVICE"] * 2 + [
        "azure-iot-hub://myhub.azure-devices.net:8883/DEVICE_TYPE", "azure-iot-hub:c", "azure-iot-hub:gone"]
