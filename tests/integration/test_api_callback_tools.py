"""Backhaul's callback operations beside the reference's: send a test now (POST .../callbacks/{id}/test) and
replay undelivered callbacks (POST .../callbacks/{id}/callbacks-not-delivered/replay): what they send, the
destination rule, the rights, and another tenant's callback not found."""
from __future__ import annotations

import base64
import time
import uuid

import pytest

from backhaul.signing import verify
from backhaul.topics import topic
from oss.profiles import PROFILES
from schemas.deliveries import decode_delivery, http_request, new_delivery
from schemas.topics import DELIVERIES
from tests.api_support import api, check, make_device_type, make_tenant  # noqa: F401  (fixture)
from tests.conftest import read_topic

pytestmark = pytest.mark.integration
SIGNING = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
READER = next(p.id for p in PROFILES.values() if p.name == "DEVICE MANAGER [R]")


async def test_a_test_send_renders_sample_values_opens_the_secrets_and_shows_the_answer(api, receiver):
    tenant = await make_tenant(api, f"Test send {uuid.uuid4().hex[:6]}")
    dtype = await make_device_type(tenant.client, tenant)
    port = receiver.url.rsplit(":", 1)[1]
    cb = check(await tenant.client.post(f"/device-types/{dtype}/callbacks", {
        "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True, "httpMethod": "POST",
        "url": f"http://bob:s3cret-pw@127.0.0.1:{port}/t/{{device}}", "headers": {"X-Api-Key": "key-123456"},
        "signingSecret": SIGNING,
        "contentType": "application/json", "bodyTemplate": '{"seq": {seqNumber}, "data": "{data}"}'}), 201)["id"]
    answer = check(await tenant.client.post(f"/device-types/{dtype}/callbacks/{cb}/test"), 200)
    assert answer["sent"] is True and answer["status"] == 200 and answer["answer"] == "ok"
    assert answer["request"] == f"POST http://127.0.0.1:{port}/t/00AB12CD"  # no credentials
    assert 0 <= answer["durationMs"] < 10_000
    [got] = receiver.requests
    assert got.body == b'{"seq": 123, "data": "0102ff"}'
    assert got.headers["X-Api-Key"] == "key-123456"
    assert got.headers["Authorization"] == "Basic " + base64.b64encode(b"bob:s3cret-pw").decode()
    assert got.headers["webhook-id"].startswith("test-")
    assert verify(SIGNING, got.headers, got.body)  # signed as deliveries are


async def test_a_test_send_obeys_the_destination_rule(api, tmp_path, monkeypatch):
    """A name the API accepted that resolves to an inside address is refused when the test sends."""
    from backhaul import settings as settings_module

    tenant = await make_tenant(api, f"Test rule {uuid.uuid4().hex[:6]}")
    dtype = await make_device_type(tenant.client, tenant)
    cb = check(await tenant.client.post(f"/device-types/{dtype}/callbacks", {
        "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True, "httpMethod": "GET",
        "url": "http://receiver.example.net:9/x"}), 201)["id"]
    hosts = tmp_path / "hosts"
    hosts.write_text("10.20.30.40 receiver.example.net\n")
    monkeypatch.setenv("BACKHAUL_CALLBACK_HOSTS_FILE", str(hosts))
    settings_module.settings.cache_clear()
    try:
        answer = check(await tenant.client.post(f"/device-types/{dtype}/callbacks/{cb}/test"), 200)
    finally:
        monkeypatch.delenv("BACKHAUL_CALLBACK_HOSTS_FILE")
        settings_module.settings.cache_clear()
    assert answer["sent"] is False and "status" not in answer
    assert answer["error"].startswith("destination refused") and "10.20.30.40" in answer["error"]


async def test_an_email_test_is_rendered_not_sent_and_rights_and_tenants_hold(api):
    owner = await make_tenant(api, f"Test mail {uuid.uuid4().hex[:6]}")
    other = await make_tenant(api, f"Test other {uuid.uuid4().hex[:6]}")
    dtype = await make_device_type(owner.client, owner)
    cb = check(await owner.client.post(f"/device-types/{dtype}/callbacks", {
        "channel": "EMAIL", "callbackType": 1, "callbackSubtype": 0, "enabled": True,
        "recipient": "ops@example.com", "subject": "status of {device}", "message": "batt {batt}"}), 201)["id"]
    answer = check(await owner.client.post(f"/device-types/{dtype}/callbacks/{cb}/test"), 200)
    assert answer["sent"] is False and "status of 00AB12CD" in answer["error"]
    assert answer["request"] == "mail to ops@example.com"
    check(await other.client.post(f"/device-types/{dtype}/callbacks/{cb}/test"), 404)
    reader = check(await api.root.post("/api-users/", {"groupId": owner.group, "name": "reader",
                                                      "profileIds": [READER]}), 201)
    check(await owner.client.as_user(reader["id"], reader["accessToken"]).post(
        f"/device-types/{dtype}/callbacks/{cb}/test"), 403)


async def test_replay_requeues_a_callbacks_undelivered_entries_once(api, isolated):
    owner = await make_tenant(api, f"Replay {uuid.uuid4().hex[:6]}")
    other = await make_tenant(api, f"Replay other {uuid.uuid4().hex[:6]}")
    dtype = await make_device_type(owner.client, owner)
    cb = check(await owner.client.post(f"/device-types/{dtype}/callbacks", {
        "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True, "httpMethod": "POST",
        "url": "http://127.0.0.1:9/up", "bodyTemplate": "d={device}"}), 201)["id"]
    now = int(time.time() * 1000)
    devices = ("00C0A1", "00C0A2")
    for i, device in enumerate(devices):
        check(await owner.client.post("/devices/", {"id": device, "name": device, "pac": "0" * 16,
                                                    "deviceTypeId": dtype}), 201)
        registration = await api.pool.fetchval("SELECT registration_id FROM devices WHERE id = $1", device)
        record = {"id": f"m{device}", "device": device, "time": now - 1000 * (2 - i), "groupId": owner.group}
        delivery = new_delivery(record, callback_id=cb, kind="DATA", channel="URL", device_type_id=dtype,
                                message_id=record["id"], origin_ms=record["time"], created_ms=record["time"],
                                variables={"device": device})
        delivery["request"] = http_request("POST", "http://127.0.0.1:9/up", {}, f"d={device}".encode(), None)
        await api.pool.execute(
            "INSERT INTO undelivered_callbacks(delivery_id, device_id, device_type_id, group_id, callback_id, "
            "time, status, callback, delivery, registration_id) VALUES ($1,$2,$3,$4,$5,$6,500,$7,$8,$9)",
            delivery["id"], device, dtype, owner.group, cb, record["time"], {"url": "http://127.0.0.1:9/up"},
            delivery, registration)
    path = f"/device-types/{dtype}/callbacks/{cb}/callbacks-not-delivered/replay"
    check(await other.client.post(path, {}), 404)
    refused = check(await owner.client.post(path, {"deviceId": "not hex"}), 400)
    assert refused["errors"][0]["field"] == "deviceId"
    assert check(await owner.client.post(path, {"deviceId": devices[0]}), 200) == {"replayed": 1}
    assert check(await owner.client.post(path, {}), 200) == {"replayed": 1}  # the other one; the first not twice
    assert check(await owner.client.post(path, {}), 200) == {"replayed": 0}
    records = await read_topic(topic(DELIVERIES), expect=2)
    sent = sorted((decode_delivery(r.value) for r in records), key=lambda d: d["id"])  # keyed by device: partitions
    assert [d["id"] for d in sent] == [f"m{d}/{cb}#r1" for d in devices]
    assert [d["webhookId"] for d in sent] == [f"m{d}/{cb}" for d in devices]
    assert all(d["scheduleFrom"] >= now for d in sent)
