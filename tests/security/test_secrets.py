"""Secrets stay secret, on the real stack.

Callbacks with every secret kind are made through the API (run as its own
process): URL credentials, an Authorization header, API-key headers (one
holding a variable), a given signing secret and generated ones, an MQTT
callback's `channelSettings.password` (to a real Mosquitto, over TLS) and an Azure
Event Hubs callback's `connectionString` (to our Kafka, which refuses its SASL PLAIN:
every attempt fails, with the client's error text, and the deliveries are given up). Frames go
through ingest, router, delivery, store and relay workers (at DEBUG) to
receivers that fail some requests (retries), always fail one callback
(undelivered records, then `backhaul replay`) and take the others. The
receivers get the right Basic auth, headers and valid signatures, and every
request carries a webhook-id that stays the same across retries and the
replay. Then every secret, in every form it could leak in, is looked for in
a pg_dump of the test database, every record of every Kafka topic of the
test's prefix (from the beginning), the processes' logs, and the answer of
every GET route of the API, as an admin and as a read-only API user. None
holds one.
"""
from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import uuid
from collections import defaultdict

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiokafka import TopicPartition

from backhaul import db
from backhaul.callback_secrets import MASK
from backhaul.kafka import make_admin, make_consumer
from backhaul.settings import settings
from backhaul.signing import verify
from oss.app import bootstrap_root, create_app
from oss.profiles import ADMIN, PROFILES
from program.supervised import free_port
from tests.api_support import Client, check
from tests.conftest import ROOT, frame, publish_frames, wait_until
from tests.mosquitto import Mosquitto, Subscriber

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

READER = next(p.id for p in PROFILES.values() if p.name == "DEVICE MANAGER [R]")
FAST = {"BACKHAUL_RETRY_SCHEDULE_S": "0.5,0.5", "BACKHAUL_RETRY_JITTER": "0", "BACKHAUL_BREAKER_FAILURES": "100",
        "BACKHAUL_LOG_LEVEL": "DEBUG"}
NO_LIMITS = "device-messages=0/1,device-list=0/1,bulk=0/1"


def token(tag: str) -> str:
    return f"{tag}{uuid.uuid4().hex[:12]}"


USER_A, PASSWORD_A = token("ua"), token("pa-")
USER_C, PASSWORD_C = token("uc"), token("pc-")
USER_D, PASSWORD_D = token("ud"), token("pd-")
USER_E, PASSWORD_E = token("ue"), token("pe-")  # the MQTT callback's
HUBS_KEY_F = token("sak-")  # the Event Hubs callback's SharedAccessKey
HUBS_F = f"Endpoint=sb://tenant-s.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={HUBS_KEY_F}"
IOT_KEY_G = base64.b64encode(token("iot-").encode()).decode()  # the IoT Hub callback's (a refused CONNECT)
IOT_G = f"HostName=tenant-s.azure-devices.net;SharedAccessKeyName=device-connect;SharedAccessKey={IOT_KEY_G}"
BEARER = token("bearer-")
API_KEY_B, API_KEY_C = token("kb-"), token("kc-")
DEVICE_TOKEN = token("dt-")  # the literal part of a secret header that holds {device}
GIVEN_SIGNING = "whsec_" + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def forms(secrets: dict[str, str]) -> dict[str, str]:
    """Every form a secret could leak in: as is, and for user:password pairs their Basic form."""
    out = dict(secrets)
    for name, (user, password) in {"A": (USER_A, PASSWORD_A), "C": (USER_C, PASSWORD_C),
                                   "D": (USER_D, PASSWORD_D)}.items():
        out[f"credentials {name}"] = f"{user}:{password}"
        out[f"basic {name}"] = base64.b64encode(f"{user}:{password}".encode()).decode()
    for name, value in list(out.items()):
        if value.startswith("whsec_"):
            out[f"{name} (key)"] = value.removeprefix("whsec_")
    return out


async def start_api(isolated, tmp_path) -> tuple[subprocess.Popen, str, object]:
    """`backhaul api` as its own process (its log is scanned too), on the test's database."""
    port = free_port()
    log = open(tmp_path / "api.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "program.cli", "api", "--port", str(port)], cwd=ROOT,
                            env=isolated.subprocess_env(BACKHAUL_LOG_LEVEL="DEBUG", BACKHAUL_API_RATE_LIMITS=NO_LIMITS),
                            stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v2"

    async def listening() -> bool:
        if proc.poll() is not None:
            raise AssertionError((tmp_path / "api.log").read_text())
        try:
            async with aiohttp.ClientSession() as s, s.get(f"{base}/openapi.json") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False
    await wait_until(listening, 30, "the API process")
    return proc, base, log


async def every_record(prefix: str) -> dict[str, list[bytes]]:
    """Every record (key and value) of every topic of `prefix`, read from the beginning to the end."""
    admin = make_admin()
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        tps = [TopicPartition(t["topic"], p["partition"]) for t in await admin.describe_topics(names)
               for p in t["partitions"]]
    finally:
        await admin.close()
    consumer = make_consumer(group=None)
    await consumer.start()
    out: dict[str, list[bytes]] = defaultdict(list)
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    out[tp.topic].append((r.key or b"") + b" " + (r.value or b"") + b"".join(
                        k.encode() + b"=" + (v or b"") for k, v in (r.headers or ())))
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return {n: out.get(n, []) for n in names}


def get_paths(pool, ids: dict[str, str], callbacks: list[str]) -> list[str]:
    """Every GET route of the app's router, with its path parameters filled in."""
    app = create_app(pool)
    templates = sorted({r.resource.canonical for r in app.router.routes()
                        if r.method == "GET" and r.resource is not None and r.resource.canonical.startswith("/v2/")})
    by_prefix = {"/v2/groups/": ids["group"], "/v2/device-types/": ids["deviceType"],
                 "/v2/devices/": ids["device"], "/v2/api-users/": ids["reader"], "/v2/contract-infos/": ids["contract"],
                 "/v2/profiles/": READER}
    paths = []
    for template in templates:
        filled = template.replace("{jobId}", "0" * 24)
        if "{id}" in filled:
            prefix = next((p for p in by_prefix if filled.startswith(p)), None)
            filled = filled.replace("{id}", by_prefix[prefix] if prefix else "0" * 24)
        paths += [filled.replace("{callbackId}", cb) for cb in callbacks] if "{callbackId}" in filled else [filled]
    return paths


async def test_no_secret_in_clear_anywhere(isolated, workers, make_receiver, tmp_path):
    seen_ids: dict[str, int] = defaultdict(int)

    async def flaky(request, rec):
        """Each webhook-id fails once, then succeeds: every delivery is retried."""
        seen_ids[rec.headers.get("webhook-id", "")] += 1
        return web.Response(status=503 if seen_ids[rec.headers.get("webhook-id", "")] == 1 else 200, text="noted")

    down = {"failing": True}

    async def until_replay(request, rec):
        return web.Response(status=500 if down["failing"] else 200, text="down" if down["failing"] else "ok")

    flaky_rx, ok_rx, down_rx = await make_receiver(flaky), await make_receiver(), await make_receiver(until_replay)
    broker = Mosquitto(tmp_path / "mosquitto", users={USER_E: PASSWORD_E}).start()
    subscriber = await Subscriber(broker).start()

    pool = await db.create_pool(min_size=1, max_size=4)
    api_proc, base, api_log = await start_api(isolated, tmp_path)
    session = aiohttp.ClientSession()
    try:
        root_group, root_login, root_token = await bootstrap_root(pool, "Security root")
        root = Client(session, base, root_login, root_token)
        group = check(await root.post("/groups/", {"name": "Tenant S", "parentId": root_group}), 201)["id"]
        contract = check(await root.post("/contract-infos/", {"name": "c", "groupId": group, "maxTokens": 0}),
                         201)["id"]
        admin_user = check(await root.post("/api-users/", {"groupId": group, "name": "s admin",
                                                          "profileIds": [ADMIN]}), 201)
        reader_user = check(await root.post("/api-users/", {"groupId": group, "name": "s reader",
                                                           "profileIds": [READER]}), 201)
        admin = root.as_user(admin_user["id"], admin_user["accessToken"])
        reader = root.as_user(reader_user["id"], reader_user["accessToken"])
        dtype = check(await admin.post("/device-types/", {"name": "meters", "groupId": group,
                                                          "contractId": contract}), 201)["id"]
        data = {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True}
        flaky_host, ok_host, down_host = (r.url.removeprefix("http://") for r in (flaky_rx, ok_rx, down_rx))
        cb_a = check(await admin.post(f"/device-types/{dtype}/callbacks", {
            **data, "url": f"http://{USER_A}:{PASSWORD_A}@{flaky_host}/basic?d={{device}}&s={{seqNumber}}",
            "httpMethod": "POST", "contentType": "application/json",
            "bodyTemplate": '{"device": "{device}", "seq": {seqNumber}}', "headers": {"X-Tenant": "{device}"},
            "signingSecret": GIVEN_SIGNING}), 201)
        cb_b = check(await admin.post(f"/device-types/{dtype}/callbacks", {
            **data, "url": f"http://{ok_host}/bearer?d={{device}}&s={{seqNumber}}", "httpMethod": "GET",
            "headers": {"Authorization": f"Bearer {BEARER}", "X-Api-Key": API_KEY_B},
            "signingSecret": "generate"}), 201)
        cb_c = check(await admin.post(f"/device-types/{dtype}/callbacks", {
            **data, "channel": "BATCH_URL", "url": f"http://{USER_C}:{PASSWORD_C}@{flaky_host}/batch",
            "httpMethod": "POST", "linePattern": "{device};{seqNumber}", "headers": {"X-Api-Key": API_KEY_C},
            "signingSecret": "generate"}), 201)
        cb_d = check(await admin.post(f"/device-types/{dtype}/callbacks", {
            **data, "url": f"http://{USER_D}:{PASSWORD_D}@{down_host}/down?d={{device}}&s={{seqNumber}}",
            "httpMethod": "GET", "headers": {"X-Auth-Token": f"{DEVICE_TOKEN}-{{device}}"}}), 201)
        cb_e = check(await admin.post(f"/device-types/{dtype}/callbacks", {
            **data, "channel": "MQTT", "bodyTemplate": "{device} {seqNumber}", "channelSettings": {
                "host": "127.0.0.1", "port": broker.tls_port, "tls": True, "caCertificate": broker.ca,
                "username": USER_E, "password": PASSWORD_E, "topic": "secure/{device}/{seqNumber}"}}), 201)
        cb_f = check(await admin.post(f"/device-types/{dtype}/callbacks", {
            **data, "channel": "AZURE_EVENT_HUBS", "bodyTemplate": "{device} {seqNumber}", "channelSettings": {
                "connectionString": HUBS_F, "topic": "hub-{device}", "tls": False,
                "bootstrapServers": [settings().kafka_gateway]}}), 201)
        cb_g = check(await admin.post(f"/device-types/{dtype}/callbacks", {
            **data, "channel": "AZURE_IOT_HUB", "bodyTemplate": "{device} {seqNumber}", "channelSettings": {
                "connectionString": IOT_G, "identity": "DEVICE", "host": "127.0.0.1", "port": broker.tls_port,
                "caCertificate": broker.ca}}), 201)
        generated_b, generated_c = cb_b["signingSecret"], cb_c["signingSecret"]
        devices = ["5EC001", "5EC002", "5EC003"]
        await pool.execute("INSERT INTO base_stations(id, name, lat, lng) VALUES ('0B01', 'station', 43.6, 1.4)")
        for d in devices:
            check(await admin.post("/devices/", {"id": d, "name": d, "pac": "00" * 8, "deviceTypeId": dtype}), 201)

        started = [workers("relay,ingest,router,store", isolated, **FAST), workers("delivery", isolated, **FAST)]
        for w in started:
            await w.wait_ready()
        await asyncio.sleep(1.0)  # the view follows the config topic within milliseconds; be generous
        await publish_frames([frame(d, s, station="0B01", data="c0ffee") for s in (1, 2) for d in devices])

        # What the receivers got ---------------------------------------------------------------
        messages = len(devices) * 2
        singles = await wait_until(lambda: len([r for r in flaky_rx.requests if r.path == "/basic"]) >= 2 * messages
                                   and [r for r in flaky_rx.requests if r.path == "/basic"], 30, "cb A and retries")
        for r in singles:
            assert r.headers["Authorization"] == basic(USER_A, PASSWORD_A)
            assert r.headers["X-Tenant"] == r.query["d"] and verify(GIVEN_SIGNING, r.headers, r.body)
        assert sorted(seen_ids[r.headers["webhook-id"]] for r in singles) == [2] * (2 * messages), \
            "each delivery came twice (a retry) with one webhook-id"

        bearer = await wait_until(lambda: len(ok_rx.requests) >= messages and ok_rx.requests, 20, "cb B")
        for r in bearer:
            assert r.headers["Authorization"] == f"Bearer {BEARER}" and r.headers["X-Api-Key"] == API_KEY_B
            assert verify(generated_b, r.headers, r.body) and not verify(GIVEN_SIGNING, r.headers, r.body)

        published = await wait_until(lambda: len(subscriber.messages) >= messages and subscriber.messages, 20,
                                     "cb E over MQTT")
        assert all(m.body.decode() == " ".join(m.topic.split("/")[1:]) for m in published)

        batches = await wait_until(lambda: [r for r in flaky_rx.requests if r.path == "/batch"]
                                   if sum(len(r.body.split(b"\n")) for r in flaky_rx.requests if r.path == "/batch"
                                          and seen_ids[r.headers["webhook-id"]] >= 2) >= messages else None,
                                   30, "cb C batches and their retries")
        for r in batches:
            assert r.headers["Authorization"] == basic(USER_C, PASSWORD_C) and r.headers["X-Api-Key"] == API_KEY_C
            assert verify(generated_c, r.headers, r.body)

        undelivered = "SELECT * FROM undelivered_callbacks WHERE callback_id = $1"
        await wait_until(lambda: pool_rows(pool, undelivered, cb_d["id"], messages), 30, "cb D undelivered")
        await wait_until(lambda: pool_rows(pool, undelivered, cb_f["id"], messages), 30, "cb F undelivered")
        refused = await pool.fetch("SELECT info FROM callback_attempts WHERE callback_id = $1", cb_f["id"])
        assert refused and all("SASL PLAIN as $ConnectionString" in r["info"] for r in refused), refused
        await wait_until(lambda: pool_rows(pool, undelivered, cb_g["id"], messages), 30, "cb G undelivered")
        refused = await pool.fetch("SELECT info FROM callback_attempts WHERE callback_id = $1", cb_g["id"])
        assert refused and all(r["info"] == "MQTT [code:135] Not authorized" for r in refused), refused
        first_tries = list(down_rx.requests)
        assert len(first_tries) == 3 * messages, "three attempts each before giving up"
        for r in first_tries:
            assert r.headers["Authorization"] == basic(USER_D, PASSWORD_D)
            assert r.headers["X-Auth-Token"] == f"{DEVICE_TOKEN}-{r.query['d']}", "a variable in a secret header"
            assert "webhook-signature" not in r.headers and r.headers["webhook-id"]
        ids_before = defaultdict(set)
        for r in first_tries:
            ids_before[(r.query["d"], r.query["s"])].add(r.headers["webhook-id"])
        assert len(ids_before) == messages and all(len(v) == 1 for v in ids_before.values())

        down["failing"] = False
        replay = subprocess.run([sys.executable, "-m", "program.cli", "replay", "--callback", cb_d["id"]], cwd=ROOT,
                                env=isolated.subprocess_env(BACKHAUL_LOG_LEVEL="DEBUG"), capture_output=True,
                                text=True, timeout=60)
        assert f"replayed {messages} " in replay.stdout, replay.stderr
        (tmp_path / "replay.log").write_text(replay.stdout + replay.stderr)
        replays = (await wait_until(lambda: len(down_rx.requests) >= 4 * messages and down_rx.requests, 20,
                                    "the replays"))[3 * messages:]
        for r in replays:
            assert r.headers["Authorization"] == basic(USER_D, PASSWORD_D)
            assert ids_before[(r.query["d"], r.query["s"])] == {r.headers["webhook-id"]}, "a replay keeps its id"
        await wait_until(lambda: pool_rows(pool, "SELECT * FROM callback_attempts WHERE status = 200", None,
                                           2 * messages + messages + messages + messages), 20, "every success stored")

        # Where a secret could hide ---------------------------------------------------------------
        secrets = forms({"password A": PASSWORD_A, "password C": PASSWORD_C, "password D": PASSWORD_D,
                         "password E (MQTT)": PASSWORD_E, "Event Hubs key F": HUBS_KEY_F,
                         "connection string F": HUBS_F, "IoT Hub key G": IOT_KEY_G, "connection string G": IOT_G,
                         "a SAS token": "SharedAccessSignature sr=",
                         "bearer": BEARER, "api key B": API_KEY_B, "api key C": API_KEY_C,
                         "device token": DEVICE_TOKEN, "given signing": GIVEN_SIGNING, "generated B": generated_b,
                         "generated C": generated_c})
        found: list[str] = []

        def scan(text: str, where: str) -> None:
            found.extend(f"{name} in {where}" for name, value in secrets.items() if value in text)

        dump = subprocess.run(["pg_dump", "--dbname", isolated.dsn], capture_output=True, text=True, timeout=60,
                              check=True).stdout
        assert cb_d["id"] in dump and "url_credentials" in dump and "5EC001" in dump, "the dump holds the data"
        scan(dump, "pg_dump")

        topics = await every_record(isolated.prefix)
        assert sum(map(len, topics.values())) > 50 and topics[f"{isolated.prefix}deliveries"]
        assert any(b"secret_headers" in r for r in topics[f"{isolated.prefix}config"]), "sealed columns published"
        for name, records in topics.items():
            scan(b"\n".join(records).decode("utf-8", "replace"), f"topic {name}")

        logs = {p.name: p.read_text() for p in tmp_path.glob("*.log")}
        assert len(logs) >= 4 and any('"level":"debug"' in text for text in logs.values()), logs.keys()
        for name, text in logs.items():
            scan(text, f"log {name}")

        paths = get_paths(pool, {"group": group, "deviceType": dtype, "device": devices[0],
                                 "reader": reader_user["id"], "contract": contract},
                          [cb_a["id"], cb_b["id"], cb_c["id"], cb_d["id"], cb_e["id"], cb_f["id"], cb_g["id"]])
        answered = defaultdict(int)
        for who, client in (("admin", admin), ("read-only", reader)):
            for path in paths:
                reply = await client.get(f"{base.removesuffix('/v2')}{path}")
                answered[(who, reply.status)] += 1
                text = (reply.body.decode("utf-8", "replace") if isinstance(reply.body, bytes)
                        else orjson.dumps(reply.body).decode())
                scan(text, f"GET {path} as {who}")
                if who == "read-only" and not path.endswith("/openapi.json"):  # the document describes the mask
                    assert MASK not in text, f"GET {path} shows a masked secret to a read-only user"
                    assert all(u not in text for u in (USER_A, USER_C, USER_D)), f"GET {path}: a URL user name"
        listed = check(await admin.get(f"/device-types/{dtype}/callbacks"), 200)["data"]
        assert sum(MASK in str(c) for c in listed) == 7, "admins see every callback's secrets masked"
        print(f"GET routes: {len(paths)} paths, answers {dict(answered)}; topics scanned: "
              f"{ {n.removeprefix(isolated.prefix): len(r) for n, r in topics.items()} }; "
              f"dump {len(dump)} chars; logs {[(n, len(t)) for n, t in logs.items()]}")
        assert answered[("admin", 200)] >= 20 and answered[("read-only", 200)] >= 15
        assert not found, "secrets in clear:\n" + "\n".join(found)
    finally:
        await subscriber.stop()
        broker.stop()
        await session.close()
        await pool.close()
        api_proc.terminate()
        api_proc.wait(20)
        api_log.close()


async def pool_rows(pool, sql: str, arg, n: int):
    rows = await (pool.fetch(sql, arg) if arg is not None else pool.fetch(sql))
    return rows if len(rows) >= n else None
