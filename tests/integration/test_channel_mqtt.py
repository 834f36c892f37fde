"""The MQTT channel on the real stack with a real Mosquitto (tests/mosquitto.py): frames -> the message
read back by a subscriber, variables rendered in topic and body, over TLS with a password (MQTT 5:
`message-id` user property) and plain 3.1.1; the broker down then back (retries deliver, each attempt
in the record with the client's error text); kill -9 of the delivery worker mid-flight (every message
arrives, repeats carry the same message-id); a publish the broker refuses (ACL) is not a success; a
message given up, then replayed, carries its first id."""
from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import orjson
import pytest

from tests.conftest import ROOT, frame, publish_frames, wait_until
from tests.mosquitto import PASSWORD, USER, Mosquitto, Subscriber, mosquitto_binary
from tests.mqtt_crash import CRASH_ENV, kill_9_mid_flight

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto missing: scripts/install-mosquitto")]

JSON_BODY = '{"device": "{device}", "seq": {seqNumber}, "data": "{data}", "note": "seq {seqNumber} of {device}"}'


@pytest.fixture
async def broker(tmp_path):
    b = Mosquitto(tmp_path / "mosquitto").start()
    yield b
    b.stop()


@pytest.fixture
async def subscriber(broker):
    s = await Subscriber(broker).start()
    yield s
    await s.stop()


def mqtt_callback(cb_id: str, broker: Mosquitto, *, tls: bool = True, protocol: str = "5", qos: int = 1,
                  topic: str = "sigfox/{deviceTypeId}/{device}", body: str = JSON_BODY,
                  content_type: str | None = "application/json", username: str = USER,
                  password: str = PASSWORD) -> dict:
    settings = {"host": "127.0.0.1", "port": broker.tls_port if tls else broker.port, "tls": tls,
                "username": username, "password": password, "topic": topic, "qos": qos, "protocol": protocol}
    if tls:
        settings["caCertificate"] = broker.ca
    return {"id": cb_id, "channel": "MQTT", "channel_settings": settings, "body_template": body,
            "content_type": content_type}


def on(subscriber: Subscriber, prefix: str, n: int):
    got = [m for m in subscriber.messages if m.topic.startswith(prefix)]
    return got if len(got) >= n else None


async def test_frames_to_mqtt_over_tls_with_a_password_and_plain_3_1_1(pipeline, broker, subscriber):
    pipe = await pipeline([mqtt_callback("tls5", broker),
                           mqtt_callback("plain311", broker, tls=False, protocol="3.1.1", qos=0,
                                         topic="v311/{device}/{seqNumber}", body="{device} says {data}",
                                         content_type=None)])
    device, type_id = pipe.devices[0], pipe.ids["deviceType"]
    await publish_frames([frame(device, 7, station=pipe.stations[0], data="c0ffee")])

    [tls] = await wait_until(lambda: on(subscriber, "sigfox/", 1), 15, "the MQTT 5 message over TLS")
    assert tls.topic == f"sigfox/{type_id}/{device}"
    assert orjson.loads(tls.body) == {"device": device, "seq": 7, "data": "c0ffee", "note": f"seq 7 of {device}"}
    assert tls.content_type == "application/json"
    [plain] = await wait_until(lambda: on(subscriber, "v311/", 1), 15, "the MQTT 3.1.1 message")
    assert plain.topic == f"v311/{device}/7" and plain.body == f"{device} says c0ffee".encode()
    assert plain.properties == {}, "MQTT 3.1.1 carries no user property"

    rows = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE status IS NOT NULL ORDER BY callback_id", 2)
    assert [(r["callback_id"], r["status"], r["error_class"]) for r in rows] == [
        ("plain311", 200, "ok"), ("tls5", 200, "ok")]
    assert tls.properties == {"message-id": rows[1]["delivery_id"]}, "the stable id: the delivery's"
    assert rows[1]["answer"] == "PUBACK" and rows[0]["answer"] == "sent (QoS 0)"
    logged = "".join(w.log_tail(100_000) for w in pipe.workers)
    assert PASSWORD not in logged


async def test_broker_down_then_back_retries_deliver_and_attempts_keep_the_client_error(
        pipeline, broker, subscriber):
    pipe = await pipeline([mqtt_callback("cb", broker, topic="down/{device}/{seqNumber}")],
                          env={"BACKHAUL_RETRY_SCHEDULE_S": "0.5,0.5,0.5,0.5,0.5,1,1,1"})
    device = pipe.devices[0]
    await publish_frames([frame(device, 2, station=pipe.stations[0], data="01")])
    await wait_until(lambda: on(subscriber, "down/", 1), 15, "a first message: the worker holds a connection")
    broker.stop()
    await publish_frames([frame(device, 3, station=pipe.stations[0], data="02")])
    failed = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE status = 600 ORDER BY attempt", 2, 15)
    for row in failed:
        assert row["error_class"] == "connect", row
        assert "Connection refused" in row["info"], row["info"]
    broker.start()
    got = await wait_until(lambda: on(subscriber, f"down/{device}/3", 1), 15, "the message once the broker is back")
    assert orjson.loads(got[0].body)["seq"] == 3
    rows = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE status = 200 ORDER BY time", 2, 10)
    attempts = await pipe.fetch("SELECT attempt, status FROM callback_attempts WHERE delivery_id = $1 "
                                "ORDER BY attempt", rows[1]["delivery_id"])
    assert attempts[-1]["status"] == 200 and len(attempts) >= 3, attempts
    assert got[0].properties["message-id"] == rows[1]["delivery_id"]


async def test_kill_9_of_the_delivery_worker_mid_flight(pipeline, broker, subscriber, isolated, workers):
    pipe = await pipeline([mqtt_callback("cb", broker, topic="crash/{device}/{seqNumber}")],
                          roles=("relay,ingest,router,store", "delivery"), env=CRASH_ENV, stations=2, devices=60)
    total = 60 * 5
    before = await kill_9_mid_flight(pipe, subscriber, lambda: workers("delivery", isolated, **CRASH_ENV), total,
                                     lambda m: m.topic)
    ids: dict[str, set[str]] = defaultdict(set)
    for m in subscriber.messages:
        ids[m.topic].add(m.properties["message-id"])
    print(f"killed after {before} messages; {len(subscriber.messages) - total} repeats")
    assert len(ids) == total
    assert all(len(v) == 1 for v in ids.values()), "a repeat carries the same message-id"
    assert len({next(iter(v)) for v in ids.values()}) == total


async def test_a_publish_the_broker_refuses_is_a_failed_attempt(pipeline, tmp_path):
    acl = f"user {USER}\ntopic write allowed/#\n\nuser reader\ntopic read #\n"
    refusing = Mosquitto(tmp_path / "acl", acl=acl).start()
    try:
        pipe = await pipeline([mqtt_callback("denied", refusing, topic="denied/{device}"),
                               mqtt_callback("bad-password", refusing, topic="allowed/{device}",
                                             password="not-the-password")],
                              env={"BACKHAUL_RETRY_SCHEDULE_S": "30"})
        await publish_frames([frame(pipe.devices[0], 1, station=pipe.stations[0], data="01")])
        rows = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE status IS NOT NULL "
                                    "ORDER BY callback_id", 2, 15)
        info = {r["callback_id"]: (r["status"], r["error_class"], r["info"]) for r in rows}
        assert info["denied"][:2] == (600, "other") and "Not authorized" in info["denied"][2], info
        assert info["bad-password"][:2] == (600, "other"), info
        assert "not-the-password" not in info["bad-password"][2]
    finally:
        refusing.stop()


async def test_given_up_then_replayed_with_the_same_message_id(pipeline, broker, subscriber, isolated):
    pipe = await pipeline([mqtt_callback("cb", broker, topic="replay/{device}/{seqNumber}")],
                          env={"BACKHAUL_RETRY_SCHEDULE_S": "0.2,0.2", "BACKHAUL_RETRY_JITTER": "0"})
    broker.stop()
    await publish_frames([frame(pipe.devices[0], 9, station=pipe.stations[0], data="09")])
    [undelivered] = await pipe.wait_rows("SELECT * FROM undelivered_callbacks", 1, 15)
    assert undelivered["callback_id"] == "cb"
    broker.start()
    replay = subprocess.run([sys.executable, "-m", "program.cli", "replay", "--callback", "cb"], cwd=ROOT,
                            env=isolated.subprocess_env(), capture_output=True, text=True, timeout=30)
    assert "replayed 1 " in replay.stdout, replay.stdout + replay.stderr
    [got] = await wait_until(lambda: on(subscriber, "replay/", 1), 15, "the replayed message")

    async def replay_recorded():  # the store writes the send's outcome after the subscriber has the message
        rows = await pipe.fetch("SELECT delivery_id, status FROM callback_attempts ORDER BY time")
        return rows if rows[-1]["status"] is not None else None

    attempts = await wait_until(replay_recorded, 15, "the replayed send's outcome stored")
    assert attempts[-1]["status"] == 200 and "#r1" in attempts[-1]["delivery_id"]
    assert got.properties["message-id"] == attempts[0]["delivery_id"], "a replay carries the first id"
