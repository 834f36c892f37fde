"""The AZURE_IOT_HUB channel on the real stack, against Debian's Mosquitto with IoT Hub's topic layout.

IoT Hub itself cannot run here. What stands in for it: tests/iot_hub_front.py, a TLS front that checks
each CONNECT as the hub does (MQTT 3.1.1, client id, user name, the SAS token's resource, policy, expiry
and signature, recomputed from the key independently of the channel's code) and pipes the accepted
ones to an open-access Mosquitto whose ACL lets a client publish only under
`devices/{its client id}/messages/events/`. A subscriber reads every message back. Proven here: the
wire names and tokens the channel sends, the topic and its property bag ($.mid, $.ct, $.ce,
callback-type), per DEVICE and per DEVICE_TYPE identities, retries, the kill -9 of the worker, and the
token renewed on a new connection (the channel alone, its clock moved). Not
proven: that Azure accepts them (no hub here; the names follow Microsoft's MQTT documentation, the
token the documented algorithm: tests/unit/test_iot_hub.py checks it against an openssl-computed vector).
"""
from __future__ import annotations

import base64
import time
from collections import defaultdict
from types import SimpleNamespace
from urllib.parse import parse_qs

import orjson
import pytest

from backhaul.callback_secrets import seal_callback
from backhaul.destinations import DestinationPolicy
from tests.conftest import frame, publish_frames, wait_until
from tests.iot_hub_front import ACL, HubFront
from tests.mosquitto import Mosquitto, Subscriber, mosquitto_binary
from tests.mqtt_crash import CRASH_ENV, kill_9_mid_flight
from workers.channels.azure_iot_hub import AzureIotHub
from workers.credentials import CallbackCredentials

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto missing: scripts/install-mosquitto")]

HUB = "backhaul-test.azure-devices.net"
KEY = base64.b64encode(b"the hub's device-connect policy key").decode()
HUB_STRING = f"HostName={HUB};SharedAccessKeyName=device-connect;SharedAccessKey={KEY}"
GATEWAY_KEY = base64.b64encode(b"the gateway device's own key").decode()
GATEWAY_STRING = f"HostName={HUB};DeviceId=gateway-1;SharedAccessKey={GATEWAY_KEY}"
JSON_BODY = '{"device": "{device}", "seq": {seqNumber}, "data": "{data}", "note": "seq {seqNumber} of {device}"}'
EVENTS = "/messages/events/"


@pytest.fixture
async def broker(tmp_path):
    b = Mosquitto(tmp_path / "mosquitto", acl=ACL, open_access=True).start()
    yield b
    b.stop()


@pytest.fixture
async def front(broker):
    f = await HubFront(broker, HUB, KEY, "device-connect").start()
    yield f
    await f.stop()


@pytest.fixture
async def gateway_front(broker):
    f = await HubFront(broker, HUB, GATEWAY_KEY, None).start()
    yield f
    await f.stop()


@pytest.fixture
async def subscriber(broker):
    s = await Subscriber(broker).start()
    yield s
    await s.stop()


def hub_callback(cb_id: str, front: HubFront, *, connection_string: str = HUB_STRING, identity: str = "DEVICE",
                 body: str = JSON_BODY, content_type: str | None = "application/json", **settings) -> dict:
    return {"id": cb_id, "channel": "AZURE_IOT_HUB", "body_template": body, "content_type": content_type,
            "channel_settings": {"connectionString": connection_string, "identity": identity, "host": "127.0.0.1",
                                 "port": front.port, "caCertificate": front.broker.ca, **settings}}


def event(m) -> tuple[str, dict[str, str]]:
    """(device id, property bag) of a device-to-cloud message read back."""
    head, _, bag = m.topic.partition(EVENTS)
    assert head.startswith("devices/") and "/" not in bag, m.topic
    return head.removeprefix("devices/"), {k: v[0] for k, v in parse_qs(bag).items()}


def of(subscriber: Subscriber, device_id: str, n: int):
    got = [m for m in subscriber.messages if m.topic.startswith(f"devices/{device_id}{EVENTS}")]
    return got if len(got) >= n else None


async def test_frames_to_iot_hub_per_device_and_per_device_type(pipeline, front, gateway_front, subscriber):
    pipe = await pipeline([hub_callback("per-device", front),
                           hub_callback("per-type", gateway_front, connection_string=GATEWAY_STRING,
                                        identity="DEVICE_TYPE", body="{device} says {data}", content_type=None,
                                        tokenLifetime=600)])
    a, b = pipe.devices[:2]
    await publish_frames([frame(a, 7, station=pipe.stations[0], data="c0ffee"),
                          frame(b, 8, station=pipe.stations[0], data="beef")])

    [from_a] = await wait_until(lambda: of(subscriber, a, 1), 15, "device A's message as device A")
    [from_b] = await wait_until(lambda: of(subscriber, b, 1), 15, "device B's message as device B")
    gateway = await wait_until(lambda: of(subscriber, "gateway-1", 2), 15, "both messages as gateway-1")
    assert orjson.loads(from_a.body) == {"device": a, "seq": 7, "data": "c0ffee", "note": f"seq 7 of {a}"}
    assert orjson.loads(from_b.body)["seq"] == 8
    assert sorted(m.body for m in gateway) == sorted([f"{a} says c0ffee".encode(), f"{b} says beef".encode()])

    rows = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE status IS NOT NULL", 4)
    assert {(r["status"], r["error_class"], r["answer"]) for r in rows} == {(200, "ok", "PUBACK")}
    ids = {(r["callback_id"], r["device_id"]): r["delivery_id"] for r in rows}
    assert event(from_a) == (a, {"$.mid": ids["per-device", a], "$.ct": "application/json", "$.ce": "utf-8",
                                 "callback-type": "DATA_UPLINK"})
    assert event(from_b)[1]["$.mid"] == ids["per-device", b]
    bags = {m.body.decode().split()[0]: event(m) for m in gateway}
    assert bags[a] == ("gateway-1", {"$.mid": ids["per-type", a], "$.ct": "text/plain", "$.ce": "utf-8",
                                     "callback-type": "DATA_UPLINK"})
    assert bags[b][1]["$.mid"] == ids["per-type", b]

    assert front.refused == [] and gateway_front.refused == []
    assert sorted(c.client_id for c in front.accepted) == sorted([a, b]), "one connection per device"
    assert [c.client_id for c in gateway_front.accepted] == ["gateway-1"], "one connection for the type"
    assert 590 <= gateway_front.accepted[0].expiry - int(from_a.at) <= 610, "tokenLifetime 600 s"
    logged = "".join(w.log_tail(100_000) for w in pipe.workers)
    assert KEY not in logged and GATEWAY_KEY not in logged and "SharedAccessSignature" not in logged


async def test_a_token_the_hub_refuses_is_a_failed_attempt_without_the_key(pipeline, front, subscriber):
    wrong = base64.b64encode(b"not the policy key").decode()
    pipe = await pipeline([hub_callback("wrong-key", front, connection_string=HUB_STRING.replace(KEY, wrong))],
                          env={"BACKHAUL_RETRY_SCHEDULE_S": "30"})
    await publish_frames([frame(pipe.devices[0], 1, station=pipe.stations[0], data="01")])
    [row] = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE status IS NOT NULL", 1, 15)
    assert (row["status"], row["error_class"]) == (600, "other"), dict(row)
    assert row["info"] == "MQTT [code:135] Not authorized", "the hub's CONNACK 5, in paho's words"
    assert wrong not in row["info"] and "SharedAccessSignature" not in row["info"]
    assert [why for _, why in front.refused] == ["the token's signature is wrong"]
    assert subscriber.messages == []


async def test_hub_down_then_back_retries_deliver_and_attempts_keep_the_client_error(
        pipeline, broker, front, subscriber):
    pipe = await pipeline([hub_callback("cb", front)], env={"BACKHAUL_RETRY_SCHEDULE_S": "0.5,0.5,0.5,0.5,0.5,1,1,1"})
    device = pipe.devices[0]
    await publish_frames([frame(device, 2, station=pipe.stations[0], data="01")])
    await wait_until(lambda: of(subscriber, device, 1), 15, "a first message: the worker holds a connection")
    await front.stop()
    broker.stop()
    await publish_frames([frame(device, 3, station=pipe.stations[0], data="02")])
    failed = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE status = 600 ORDER BY attempt", 2, 15)
    for row in failed:
        assert row["error_class"] == "connect", dict(row)
        assert "Connection refused" in row["info"], row["info"]
    broker.start()
    await front.start()
    got = await wait_until(lambda: of(subscriber, device, 2), 15, "the message once the hub is back")
    assert orjson.loads(got[1].body)["seq"] == 3
    rows = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE status = 200 ORDER BY time", 2, 10)
    attempts = await pipe.fetch("SELECT attempt, status FROM callback_attempts WHERE delivery_id = $1 "
                                "ORDER BY attempt", rows[1]["delivery_id"])
    assert attempts[-1]["status"] == 200 and len(attempts) >= 3, attempts
    assert event(got[1])[1]["$.mid"] == rows[1]["delivery_id"]


async def test_kill_9_of_the_delivery_worker_mid_flight(pipeline, front, subscriber, isolated, workers):
    pipe = await pipeline([hub_callback("cb", front)], roles=("relay,ingest,router,store", "delivery"),
                          env=CRASH_ENV, stations=2, devices=60)
    total = 60 * 5
    before = await kill_9_mid_flight(pipe, subscriber, lambda: workers("delivery", isolated, **CRASH_ENV), total,
                                     lambda m: m.body)
    ids: dict[bytes, set[str]] = defaultdict(set)
    for m in subscriber.messages:
        device, bag = event(m)
        assert orjson.loads(m.body)["device"] == device, "sent as its own device"
        ids[m.body].add(bag["$.mid"])
    print(f"killed after {before} messages; {len(subscriber.messages) - total} repeats; "
          f"{len(front.accepted)} connections")
    assert len(ids) == total
    assert all(len(v) == 1 for v in ids.values()), "a repeat carries the same $.mid"
    assert len({next(iter(v)) for v in ids.values()}) == total
    assert front.refused == []


async def test_the_token_is_renewed_with_a_new_connection_before_it_expires(front, subscriber, monkeypatch):
    # The channel alone (its clock moved: 300 s tokens are renewed after 240 s), against the checking front.
    channel = AzureIotHub()
    channel._policy = DestinationPolicy.parse("127.0.0.1/32")
    callback = seal_callback({**hub_callback("renew", front, tokenLifetime=300), "url": None})
    context = SimpleNamespace(settings=SimpleNamespace(callback_timeout_s=5.0, endpoint_concurrency=4),
                              credentials=CallbackCredentials())
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])

    async def send(n: int) -> None:
        delivery = {"id": f"rec-{n}/renew", "device": "00AB12CD", "kind": "DATA_UPLINK",
                    "publish": {"topic": "", "body": f'{{"n": {n}}}', "contentType": "application/json"}}
        outcome = await channel.send(delivery, 0, callback, context)  # type: ignore[arg-type]
        assert (outcome.status, outcome.answer) == (200, "PUBACK"), outcome
    try:
        await send(1)
        now[0] += 200
        await send(2)
        assert len(front.accepted) == 1, "the token is reused while its connection lives"
        now[0] += 41  # past four fifths of 300 s
        await send(3)
        assert [c.client_id for c in front.accepted] == ["00AB12CD"] * 2, "renewed: a new connection"
        first, renewed = (c.expiry for c in front.accepted)
        assert renewed - first >= 241 and renewed > now[0] + 299, "a fresh token, checked by the front"
        got = await wait_until(lambda: of(subscriber, "00AB12CD", 3), 10, "the three messages")
        assert [orjson.loads(m.body)["n"] for m in got] == [1, 2, 3]
        assert [event(m)[1]["$.mid"] for m in got] == ["rec-1/renew", "rec-2/renew", "rec-3/renew"]
    finally:
        await channel.close()
