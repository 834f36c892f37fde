"""AZURE_IOT_HUB callbacks through the API: the connection string sealed, masked for writers, invisible
to readers, kept by its mask but not when the destination moves; bad settings refused naming the
member and never repeating the key; the hub's host under the destination rule at save."""
from __future__ import annotations

import base64

import orjson
import pytest

from backhaul.callback_secrets import MASK
from backhaul.secretbox import keyring
from tests.api_support import api, check  # noqa: F401  (fixture)
from tests.integration.test_api_callback_secrets import only, setup

pytestmark = pytest.mark.integration

KEY = base64.b64encode(b"iot hub device-connect key 0042").decode()
HUB = f"HostName=acme.azure-devices.net;SharedAccessKeyName=device-connect;SharedAccessKey={KEY}"
DEVICE = f"HostName=acme.azure-devices.net;DeviceId=gateway-1;SharedAccessKey={KEY}"


def hub_callback(**settings) -> dict:
    return {"channel": "AZURE_IOT_HUB", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
            "bodyTemplate": '{"device": "{device}", "data": "{data}"}', "contentType": "application/json",
            "channelSettings": {"connectionString": HUB, "identity": "DEVICE", **settings}}


async def test_the_connection_string_is_sealed_masked_and_write_only(api):
    writer, reader, dtype = await setup(api, "IoT Hub secrets")
    cb = check(await writer.post(f"/device-types/{dtype}/callbacks", hub_callback(tokenLifetime=900)), 201)["id"]
    path = f"/device-types/{dtype}/callbacks/{cb}"
    row = dict(await api.pool.fetchrow("SELECT * FROM callbacks WHERE id = $1", cb))
    assert keyring().open(row["channel_secrets"]["connectionString"]) == HUB
    raw = orjson.dumps({k: v for k, v in row.items() if k not in ("created_at", "updated_at")}).decode()
    assert KEY not in raw and "connectionString" not in orjson.dumps(row["channel_settings"]).decode()

    shown = only(await writer.get(f"/device-types/{dtype}/callbacks"), cb)
    assert shown["channel"] == "AZURE_IOT_HUB"
    assert shown["channelSettings"] == {"connectionString": MASK, "identity": "DEVICE", "tokenLifetime": 900}
    seen = only(await reader.get(f"/device-types/{dtype}/callbacks"), cb)
    assert seen["channelSettings"] == {"identity": "DEVICE", "tokenLifetime": 900}

    check(await writer.put(path, {"channelSettings": shown["channelSettings"] | {"tokenLifetime": 1800}}), 204)
    row = dict(await api.pool.fetchrow("SELECT * FROM callbacks WHERE id = $1", cb))
    assert keyring().open(row["channel_secrets"]["connectionString"]) == HUB, "the mask keeps it"
    assert row["channel_settings"]["tokenLifetime"] == 1800

    left_out = {k: v for k, v in shown["channelSettings"].items() if k != "connectionString"}
    check(await writer.put(path, {"channelSettings": left_out}), 204)  # left out, same destination: kept
    moved = await writer.put(path, {"channelSettings": left_out | {"host": "mqtt.elsewhere.example"}})
    assert moved.status == 400, moved.body
    assert {e["field"] for e in moved.body["errors"]} == {"channelSettings.connectionString"}, moved.body
    assert any("the destination changed" in e["message"] for e in moved.body["errors"]), moved.body


@pytest.mark.parametrize("settings, field, words", [
    ({"identity": None}, "channelSettings.identity", "is required"),
    ({"identity": "GROUP"}, "channelSettings.identity", "must be one of DEVICE, DEVICE_TYPE"),
    ({"connectionString": DEVICE}, "channelSettings.connectionString", "identity DEVICE needs the hub's"),
    ({"identity": "DEVICE_TYPE"}, "channelSettings.deviceId", "is required with identity DEVICE_TYPE"),
    ({"identity": "DEVICE_TYPE", "deviceId": "a/b"}, "channelSettings.deviceId", "is not an IoT Hub device id"),
    ({"connectionString": HUB.replace("SharedAccessKeyName=device-connect;", "")},
     "channelSettings.connectionString", "give SharedAccessKeyName"),
    ({"connectionString": HUB + "x!"}, "channelSettings.connectionString", "SharedAccessKey must be base64"),
    ({"tokenLifetime": 30}, "channelSettings.tokenLifetime", "must be between 300 and 604800"),
    ({"topic": "t"}, "channelSettings.topic", "is not a member of these settings"),
    ({"host": "169.254.169.254"}, "channelSettings.host", "link-local"),
    ({"connectionString": HUB.replace("acme.azure-devices.net", "169.254.169.254")},
     "channelSettings.connectionString", "link-local"),
])
async def test_bad_settings_are_refused_naming_the_member_without_the_key(api, settings, field, words):
    writer, _, dtype = await setup(api, f"IoT Hub refused {field} {words}")
    body = hub_callback()
    body["channelSettings"] = {k: v for k, v in {**body["channelSettings"], **settings}.items() if v is not None}
    reply = await writer.post(f"/device-types/{dtype}/callbacks", body)
    assert reply.status == 400, reply.body
    assert [e["field"] for e in reply.body["errors"]] == [field], reply.body
    assert words in reply.body["errors"][0]["message"], reply.body
    assert KEY not in orjson.dumps(reply.body).decode()
