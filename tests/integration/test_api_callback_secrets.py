"""Callback secrets through the API: masked for writers, invisible to readers, write-only (kept when
left out or masked, removed by null), sealed in PostgreSQL, generated signing secrets shown once, and
URL credentials refused beside an Authorization header."""
from __future__ import annotations

import base64

import orjson
import pytest

from backhaul.callback_secrets import MASK
from backhaul.secretbox import keyring
from backhaul.signing import secret_key
from oss.profiles import PROFILES
from tests.api_support import api, check, make_device_type, make_tenant  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

READER = next(p.id for p in PROFILES.values() if p.name == "DEVICE MANAGER [R]")
SIGNING = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
PASSWORD, API_KEY = "p@ss-Wd-4417", "key-5f0c2e9a"
SECRETS = (PASSWORD, "p%40ss-Wd-4417", API_KEY, SIGNING, SIGNING[6:])


async def setup(api, name: str):
    tenant = await make_tenant(api, name)
    dtype = await make_device_type(tenant.client, tenant)
    reader = check(await api.root.post("/api-users/", {"groupId": tenant.group, "name": f"{name} reader",
                                                      "profileIds": [READER]}), 201)
    return tenant.client, tenant.client.as_user(reader["id"], reader["accessToken"]), dtype


async def stored(api, callback_id: str) -> dict:
    row = dict(await api.pool.fetchrow("SELECT * FROM callbacks WHERE id = $1", callback_id))
    box = keyring()
    return {"url": row["url"], "headers": row["headers"],
            "credentials": box.open(row["url_credentials"]) if row["url_credentials"] else None,
            "secret_headers": {n: box.open(t) for n, t in row["secret_headers"].items()},
            "signing": box.open(row["signing_secret"]) if row["signing_secret"] else None,
            "raw": orjson.dumps({k: v for k, v in row.items() if k not in ("created_at", "updated_at")}).decode()}


def url_callback(**extra) -> dict:
    return {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True, "httpMethod": "POST",
            "url": "http://alice:p%40ss-Wd-4417@127.0.0.1:9/in?d={device}",
            "headers": {"X-Api-Key": API_KEY, "X-Tenant": "{device}"}, "signingSecret": SIGNING, **extra}


def only(reply, callback_id: str) -> dict:
    return next(c for c in check(reply, 200)["data"] if c["id"] == callback_id)


async def test_secrets_are_sealed_masked_for_writers_and_invisible_to_readers(api):
    writer, reader, dtype = await setup(api, "Secrets A")
    created = check(await writer.post(f"/device-types/{dtype}/callbacks", url_callback()), 201)
    assert set(created) == {"id"}, "a given secret is never answered back"
    cb = created["id"]

    row = await stored(api, cb)
    assert row["url"] == "http://127.0.0.1:9/in?d={device}" and row["headers"] == {"X-Tenant": "{device}"}
    assert row["credentials"] == "alice:p%40ss-Wd-4417" and row["secret_headers"] == {"X-Api-Key": API_KEY}
    assert row["signing"] == SIGNING
    assert not any(s in row["raw"] for s in SECRETS), "PostgreSQL holds every secret sealed"

    seen = only(await writer.get(f"/device-types/{dtype}/callbacks"), cb)
    assert seen["url"] == f"http://{MASK}@127.0.0.1:9/in?d={{device}}"
    assert seen["headers"] == {"X-Tenant": "{device}", "X-Api-Key": MASK}
    assert seen["signingSecret"] == f"whsec_{MASK}"

    read = await reader.get(f"/device-types/{dtype}/callbacks")
    seen = only(read, cb)
    assert seen["url"] == "http://127.0.0.1:9/in?d={device}" and seen["headers"] == {"X-Tenant": "{device}"}
    assert "signingSecret" not in seen
    raw = orjson.dumps(read.body).decode()
    assert MASK not in raw and "alice" not in raw and not any(s in raw for s in SECRETS), \
        "a read-only caller sees no secret, not even masked"
    assert (await reader.put(f"/device-types/{dtype}/callbacks/{cb}", {"enabled": False})).status == 403


async def test_write_only_keep_on_omit_or_mask_remove_on_null(api):
    writer, _, dtype = await setup(api, "Secrets B")
    cb = check(await writer.post(f"/device-types/{dtype}/callbacks", url_callback(
        headers={"X-Api-Key": API_KEY, "Cookie": "sid=c00k1e-77", "X-Tenant": "a"})), 201)["id"]
    path = f"/device-types/{dtype}/callbacks/{cb}"
    before = await stored(api, cb)

    check(await writer.put(path, {"bodyTemplate": "d={device}"}), 204)
    after = await stored(api, cb)
    assert (after["credentials"], after["secret_headers"], after["signing"]) == (
        before["credentials"], before["secret_headers"], before["signing"]), "left out: kept"

    shown = only(await writer.get(f"/device-types/{dtype}/callbacks"), cb)
    check(await writer.put(path, {k: shown[k] for k in ("url", "headers", "signingSecret")}), 204)
    after = await stored(api, cb)
    assert (after["credentials"], after["secret_headers"], after["signing"]) == (
        before["credentials"], before["secret_headers"], before["signing"]), "a read-edit-write round trip keeps all"

    check(await writer.put(path, {"url": "http://127.0.0.1:9/other", "headers": {"X-Tenant": "b"}}), 204)
    after = await stored(api, cb)
    assert after["url"] == "http://127.0.0.1:9/other" and after["credentials"] == before["credentials"], \
        "a new URL on the same host keeps its credentials"
    assert after["headers"] == {"X-Tenant": "b"} and after["secret_headers"] == before["secret_headers"], \
        "clear headers are replaced, secret ones left out are kept"

    moved = await writer.put(path, {"url": "http://customer.example:9/in"})
    assert moved.status == 400 and moved.body["errors"][0]["field"] == "url"
    assert "host changed" in moved.body["errors"][0]["message"], "credentials do not follow a callback elsewhere"

    check(await writer.put(path, {"headers": {"X-Api-Key": "key-rotated-1", "Cookie": None, "X-Tenant": "b"}}), 204)
    after = await stored(api, cb)
    assert after["secret_headers"] == {"X-Api-Key": "key-rotated-1"}, "a new value replaces, null removes"

    check(await writer.put(path, {"signingSecret": None, "urlCredentials": None}), 204)
    after = await stored(api, cb)
    assert after["signing"] is None and after["credentials"] is None
    shown = only(await writer.get(f"/device-types/{dtype}/callbacks"), cb)
    assert "signingSecret" not in shown and MASK not in shown["url"]

    masked_nothing = await writer.put(path, {"signingSecret": f"whsec_{MASK}", "url": f"http://{MASK}@127.0.0.1:9/"})
    assert masked_nothing.status == 400
    assert {e["field"] for e in masked_nothing.body["errors"]} == {"signingSecret", "url"}

    check(await writer.put(path, {"headers": None}), 204)
    after = await stored(api, cb)
    assert after["headers"] == {} and after["secret_headers"] == {}, "headers: null removes every header"


async def test_generated_signing_secret_is_shown_once_and_signs(api):
    writer, _, dtype = await setup(api, "Secrets C")
    created = check(await writer.post(f"/device-types/{dtype}/callbacks", url_callback(
        signingSecret="generate", url="http://127.0.0.1:9/in", headers={})), 201)
    secret = created["signingSecret"]
    assert secret.startswith("whsec_") and len(secret_key(secret)) == 32
    assert (await stored(api, created["id"]))["signing"] == secret
    assert only(await writer.get(f"/device-types/{dtype}/callbacks"), created["id"])["signingSecret"] == \
        f"whsec_{MASK}"

    renewed = check(await writer.put(f"/device-types/{dtype}/callbacks/{created['id']}",
                                     {"signingSecret": "generate"}), 200)
    assert renewed["signingSecret"] != secret and (await stored(api, created["id"]))["signing"] == \
        renewed["signingSecret"]


@pytest.mark.parametrize("body, fields, words", [
    (url_callback(headers={"Authorization": "Bearer t0k3n-value"}), {"url", "headers.Authorization"},
     "both credentials in its URL and an Authorization header"),
    (url_callback(signingSecret="whsec_" + base64.b64encode(b"short").decode()), {"signingSecret"}, "24 to 64"),
    (url_callback(signingSecret="plain-text-secret"), {"signingSecret"}, "whsec_"),
    (url_callback(url="http://127.0.0.1:9/", headers={"X-Api-Key": MASK}), {"headers.X-Api-Key"}, "stored"),
    ({"channel": "EMAIL", "callbackType": 0, "callbackSubtype": 2, "enabled": True, "recipient": "a@example.com",
      "subject": "s", "message": "m", "signingSecret": SIGNING}, {"signingSecret"}, "only URL and BATCH_URL"),
])
async def test_refused_at_save_with_the_fields_named(api, body, fields, words):
    writer, _, dtype = await setup(api, f"Refused {len(str(body))}")
    refused = await writer.post(f"/device-types/{dtype}/callbacks", body)
    assert refused.status == 400, refused.body
    assert {e["field"] for e in refused.body["errors"]} == fields
    assert words in refused.body["message"]
    assert not any(s in orjson.dumps(refused.body).decode() for s in (*SECRETS, "t0k3n-value")), \
        "an error never repeats a secret"


async def test_an_authorization_header_added_beside_stored_url_credentials_is_refused(api):
    writer, _, dtype = await setup(api, "Secrets D")
    cb = check(await writer.post(f"/device-types/{dtype}/callbacks", url_callback(headers={})), 201)["id"]
    refused = await writer.put(f"/device-types/{dtype}/callbacks/{cb}",
                               {"headers": {"Authorization": "Bearer t0k3n-value"}})
    assert refused.status == 400
    assert {e["field"] for e in refused.body["errors"]} == {"url", "headers.Authorization"}
    check(await writer.put(f"/device-types/{dtype}/callbacks/{cb}",
                           {"urlCredentials": None, "headers": {"Authorization": "Bearer t0k3n-value"}}), 204)
    after = await stored(api, cb)
    assert after["credentials"] is None and after["secret_headers"] == {"Authorization": "Bearer t0k3n-value"}


MQTT_PASSWORD = "mq-pass-93c1"


def mqtt_callback(**settings) -> dict:
    return {"channel": "MQTT", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
            "bodyTemplate": '{"device": "{device}"}', "contentType": "application/json",
            "channelSettings": {"host": "127.0.0.1", "port": 1883, "username": "bh", "password": MQTT_PASSWORD,
                                "topic": "sigfox/{device}", "qos": 1, "protocol": "5", **settings}}


async def test_channel_settings_secrets_sealed_masked_write_only(api):
    writer, reader, dtype = await setup(api, "Secrets MQTT")
    cb = check(await writer.post(f"/device-types/{dtype}/callbacks", mqtt_callback()), 201)["id"]
    path = f"/device-types/{dtype}/callbacks/{cb}"
    row = dict(await api.pool.fetchrow("SELECT * FROM callbacks WHERE id = $1", cb))
    assert "password" not in row["channel_settings"] and row["channel_settings"]["topic"] == "sigfox/{device}"
    assert keyring().open(row["channel_secrets"]["password"]) == MQTT_PASSWORD
    raw = orjson.dumps({k: v for k, v in row.items() if k not in ("created_at", "updated_at")}).decode()
    assert MQTT_PASSWORD not in raw, "PostgreSQL holds the password sealed"

    shown = only(await writer.get(f"/device-types/{dtype}/callbacks"), cb)
    assert shown["channel"] == "MQTT" and shown["channelSettings"]["password"] == MASK
    assert "url" not in shown and "headers" not in shown
    seen = only(await reader.get(f"/device-types/{dtype}/callbacks"), cb)
    assert "password" not in seen["channelSettings"] and seen["channelSettings"]["host"] == "127.0.0.1"

    check(await writer.put(path, {"channelSettings": shown["channelSettings"] | {"qos": 0}}), 204)
    check(await writer.put(path, {"channelSettings": {k: v for k, v in shown["channelSettings"].items()
                                                      if k != "password"}}), 204)
    row = dict(await api.pool.fetchrow("SELECT * FROM callbacks WHERE id = $1", cb))
    assert keyring().open(row["channel_secrets"]["password"]) == MQTT_PASSWORD, "masked or left out: kept"
    assert row["channel_settings"]["qos"] == 1, "the object given replaces the stored one"

    moved = await writer.put(path, {"channelSettings": {**mqtt_callback()["channelSettings"], "host": "10.9.9.9",
                                                        "password": MASK}})
    assert moved.status == 400
    assert {e["field"] for e in moved.body["errors"]} == {"channelSettings.host"}, moved.body
    elsewhere = {k: v for k, v in mqtt_callback()["channelSettings"].items() if k != "password"}
    moved = await writer.put(path, {"channelSettings": elsewhere | {"host": "mqtt.customer.example"}})
    assert moved.status == 400 and moved.body["errors"][0]["field"] == "channelSettings.password"

    check(await writer.put(path, {"channelSettings": shown["channelSettings"] | {"password": None}}), 204)
    row = dict(await api.pool.fetchrow("SELECT * FROM callbacks WHERE id = $1", cb))
    assert row["channel_secrets"] == {}, "null removes it"


@pytest.mark.parametrize("settings, field", [
    ({"topic": None}, "channelSettings.topic"),
    ({"qos": 2}, "channelSettings.qos"),
    ({"topic": "a/{nosuch}"}, "channelSettings.topic"),
    ({"password": MASK}, "channelSettings.password"),
])
async def test_channel_settings_refused_with_the_member_named(api, settings, field):
    writer, _, dtype = await setup(api, f"Refused MQTT {field} {settings}")
    body = mqtt_callback()
    body["channelSettings"] = {k: v for k, v in {**body["channelSettings"], **settings}.items() if v is not None}
    reply = await writer.post(f"/device-types/{dtype}/callbacks", body)
    assert reply.status == 400, reply.body
    assert [e["field"] for e in reply.body["errors"]] == [field], reply.body


KAFKA_PASSWORD = "kf-pass-5e1d"
HUBS_KEY = "c2FrLWt1eS03NzQxYWJjZGVm="
HUBS = f"Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={HUBS_KEY};EntityPath=up"


@pytest.mark.parametrize("channel, settings, path, secret", [
    ("KAFKA", {"bootstrapServers": ["kafka.example.com:9093"], "topic": "sigfox.{deviceTypeId}", "tls": True,
               "sasl": {"mechanism": "SCRAM-SHA-512", "username": "bh", "password": KAFKA_PASSWORD}},
     "sasl.password", KAFKA_PASSWORD),
    ("AZURE_EVENT_HUBS", {"connectionString": HUBS}, "connectionString", HUBS),
])
async def test_kafka_and_event_hubs_secrets_sealed_masked_write_only(api, channel, settings, path, secret):
    writer, reader, dtype = await setup(api, f"Secrets {channel}")
    body = {"channel": channel, "callbackType": 0, "callbackSubtype": 2, "enabled": True,
            "bodyTemplate": "{device} {seqNumber}", "channelSettings": settings}
    cb = check(await writer.post(f"/device-types/{dtype}/callbacks", body), 201)["id"]
    row = dict(await api.pool.fetchrow("SELECT * FROM callbacks WHERE id = $1", cb))
    assert keyring().open(row["channel_secrets"][path]) == secret
    raw = orjson.dumps({k: v for k, v in row.items() if k not in ("created_at", "updated_at")}).decode()
    assert secret not in raw and KAFKA_PASSWORD not in raw and HUBS_KEY not in raw, "sealed at rest"

    shown = only(await writer.get(f"/device-types/{dtype}/callbacks"), cb)["channelSettings"]
    seen = only(await reader.get(f"/device-types/{dtype}/callbacks"), cb)["channelSettings"]
    leaf = path.split(".")[-1]
    assert (shown.get("sasl") or shown)[leaf] == MASK and leaf not in (seen.get("sasl") or seen)

    check(await writer.put(f"/device-types/{dtype}/callbacks/{cb}", {"channelSettings": shown}), 204)
    row = dict(await api.pool.fetchrow("SELECT * FROM callbacks WHERE id = $1", cb))
    assert keyring().open(row["channel_secrets"][path]) == secret, "the mask keeps it"


async def test_a_bad_connection_string_is_refused_naming_the_part_without_its_key(api):
    writer, _, dtype = await setup(api, "Refused hubs")
    body = {"channel": "AZURE_EVENT_HUBS", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
            "bodyTemplate": "{device}", "channelSettings": {"connectionString": HUBS.replace("sb://", "https://")}}
    reply = await writer.post(f"/device-types/{dtype}/callbacks", body)
    assert reply.status == 400, reply.body
    assert [(e["field"], e["message"]) for e in reply.body["errors"]] == [
        ("channelSettings.connectionString", "Endpoint must start with sb://")]
    assert HUBS_KEY not in orjson.dumps(reply.body).decode()
