"""Retries on the real stack: receivers that answer 200, 500, 429 + Retry-After, 3xx, hang,
answer slowly or refuse connections; every attempt recorded; exhausted deliveries listed
(Sigfox shape), the callback marked dead, one alert e-mail; replay by device, callback, time."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from aiohttp import web

from tests.conftest import ROOT, at_least, frame, free_port, publish_frames, wait_until

pytestmark = pytest.mark.integration

SCHEDULE = "0.3,0.3"  # the Sigfox preset shortened: 3 attempts in all
FAST = {"BACKHAUL_RETRY_SCHEDULE_S": SCHEDULE, "BACKHAUL_RETRY_JITTER": "0", "BACKHAUL_CALLBACK_TIMEOUT_S": "1",
        "BACKHAUL_BREAKER_FAILURES": "100"}  # the circuit breaker has its own test
QUERY = "device={device}&seq={seqNumber}&data={data}"


def answer(status: int, body: bytes = b"", headers: dict | None = None):
    async def behave(request, rec):
        return web.Response(status=status, body=body, headers=headers)
    return behave


def url_callback(url: str, **columns) -> dict:
    return {"url": f"{url}/cb?{QUERY}", "http_method": "GET", **columns}


async def attempts_of(pipe, callback_id: str) -> list:
    return await pipe.fetch("SELECT * FROM callback_attempts WHERE callback_id = $1 ORDER BY attempt", callback_id)


async def test_answers_retries_and_every_attempt_recorded(pipeline, make_receiver):
    release = asyncio.Event()
    calls_429 = []

    async def too_many_then_ok(request, rec):
        calls_429.append(rec.at)
        if len(calls_429) == 1:
            return web.Response(status=429, headers={"Retry-After": "2"})
        return web.Response(text="thanks")

    async def hang(request, rec):
        await release.wait()
        return web.Response(text="too late")

    async def slow(request, rec):
        await asyncio.sleep(0.6)
        return web.Response(status=204)

    receivers = {
        "ok": await make_receiver(answer(200, b"fine")),
        "e500": await make_receiver(answer(500, b"x" * 5000)),
        "r429": await make_receiver(too_many_then_ok),
        "redirect": await make_receiver(answer(302, headers={"Location": "http://127.0.0.1:1/"})),
        "hang": await make_receiver(hang),
        "slow": await make_receiver(slow),
    }
    refused_url = f"http://127.0.0.1:{free_port()}"
    callbacks = [url_callback(r.url, id=f"cb-{name}") for name, r in receivers.items()]
    callbacks.append(url_callback(refused_url, id="cb-refused"))
    pipe = await pipeline(callbacks, env=FAST)
    try:
        device, station = pipe.devices[0], pipe.stations[0]
        await publish_frames([frame(device, 7, station=station, data="0102")])

        final = {"cb-ok": 1, "cb-e500": 3, "cb-r429": 2, "cb-redirect": 3, "cb-hang": 3, "cb-slow": 1,
                 "cb-refused": 3}

        async def all_recorded() -> bool:
            # count(status): a send is on the record from the moment it goes; wait for its answer too
            rows = await pipe.fetch("SELECT callback_id, count(status) AS n FROM callback_attempts GROUP BY callback_id")
            return {r["callback_id"]: r["n"] for r in rows} == final
        await wait_until(all_recorded, 30, "every attempt of every callback in callback_attempts")

        ok = (await attempts_of(pipe, "cb-ok"))[0]
        assert (ok["status"], ok["error_class"], ok["answer"], ok["info"]) == (200, "ok", "fine", None)
        assert ok["latency_ms"] > 0 and ok["device_id"] == device and ok["message_id"]
        assert receivers["ok"].requests[0].query == {"device": device, "seq": "7", "data": "0102"}

        e500 = await attempts_of(pipe, "cb-e500")
        assert [(r["attempt"], r["status"], r["error_class"], r["info"]) for r in e500] == [
            (n, 500, "http_5xx", "HTTP 500") for n in (1, 2, 3)]
        assert all(r["answer"] == "x" * 1024 for r in e500), "the answer is kept, cut at 1 KiB"
        gaps = [b.at - a.at for a, b in zip(receivers["e500"].requests, receivers["e500"].requests[1:], strict=False)]
        assert len(gaps) == 2 and all(0.25 <= g < 1.5 for g in gaps), f"retries on the 0.3 s schedule: {gaps}"

        r429 = await attempts_of(pipe, "cb-r429")
        assert [(r["status"], r["error_class"]) for r in r429] == [(429, "http_429"), (200, "ok")]
        assert calls_429[1] - calls_429[0] >= 1.9, "Retry-After: 2 wins over the 0.3 s schedule"

        redirect = await attempts_of(pipe, "cb-redirect")
        assert {(r["status"], r["error_class"]) for r in redirect} == {(302, "invalid_answer")}, \
            "only 2xx is success; redirects are not followed"

        hung = await attempts_of(pipe, "cb-hang")
        assert {(r["status"], r["error_class"]) for r in hung} == {(600, "timeout")}
        assert all(950 <= r["latency_ms"] < 3000 for r in hung), [r["latency_ms"] for r in hung]

        slow_row = (await attempts_of(pipe, "cb-slow"))[0]
        assert (slow_row["status"], slow_row["error_class"]) == (204, "ok") and slow_row["latency_ms"] >= 600

        refused = await attempts_of(pipe, "cb-refused")
        assert {(r["status"], r["error_class"]) for r in refused} == {(600, "connect")}
        assert all(refused_url.split("//")[1] in r["info"] for r in refused)

        dead = {r["id"] for r in await pipe.fetch("SELECT id FROM callbacks WHERE dead")}
        assert dead == {"cb-e500", "cb-redirect", "cb-hang", "cb-refused"}
        listed = await pipe.fetch("SELECT callback_id, status FROM undelivered_callbacks")
        assert {(r["callback_id"], r["status"]) for r in listed} == {
            ("cb-e500", 500), ("cb-redirect", 302), ("cb-hang", 600), ("cb-refused", 600)}
    finally:
        release.set()


async def test_jitter_spreads_the_retries(pipeline, make_receiver):
    failing = await make_receiver(answer(503))
    pipe = await pipeline([url_callback(failing.url, id="cb-jitter")],
                          env={**FAST, "BACKHAUL_RETRY_SCHEDULE_S": "1", "BACKHAUL_RETRY_JITTER": "0.5"},
                          devices=12)
    await publish_frames([frame(d, 1, station=pipe.stations[0]) for d in pipe.devices])
    await wait_until(lambda: len(failing.requests) >= 24, 20, "two attempts per device")
    first: dict[str, float] = {}
    gaps = []
    for r in failing.requests:
        device = r.query["device"]
        if device in first:
            gaps.append(r.at - first[device])
        else:
            first[device] = r.at
    print(f"retry gaps with schedule 1 s, jitter 0.5: {sorted(round(g, 2) for g in gaps)}")
    assert len(gaps) == 12
    assert all(0.45 <= g <= 1.5 + 0.6 for g in gaps), gaps
    assert max(gaps) - min(gaps) > 0.2, f"jitter should spread the retries: {gaps}"


async def test_exhausted_deliveries_are_listed_alerted_once_and_replayed(pipeline, make_receiver, smtp, isolated):
    failing = True

    async def behave(request, rec):
        return web.Response(status=500 if failing else 200, text="down" if failing else "ok")

    endpoint = await make_receiver(behave)
    callback = {"id": "cb-down", "url": f"http://user:s3cret@127.0.0.1:{endpoint.port}/in?{QUERY}",
                "http_method": "POST", "content_type": "application/json", "headers": {"X-Tenant": "{device}"},
                "body_template": '{"device": "{device}", "data": "{data}", "seq": {seqNumber}}',
                "signing_secret": "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="}
    pipe = await pipeline([callback], env={**FAST, **smtp.env}, devices=3,
                          device_type={"alert_email": "ops@example.com"})
    a, b, c = pipe.devices
    station = pipe.stations[0]

    undelivered = "SELECT * FROM undelivered_callbacks"
    await publish_frames([frame(d, 1, station=station, data="aa01") for d in (a, b, c)])
    await pipe.wait_rows(undelivered, 3)
    middle = int(time.time() * 1000)
    await publish_frames([frame(c, 2, station=station, data="aa02")])
    await pipe.wait_rows(undelivered, 4)

    rows = await pipe.fetch("SELECT * FROM undelivered_callbacks WHERE device_id = $1", a)
    assert len(rows) == 1
    row = rows[0]
    assert (row["callback_id"], row["device_type_id"], row["group_id"], row["status"], row["message"]) == (
        "cb-down", pipe.ids["deviceType"], pipe.ids["group"], 500, "HTTP 500")
    assert row["data"] == "aa01" and row["snr"] == 12.0 and row["message_id"]
    params = row["parameters"]
    assert row["callback"] == {"method": "POST", "url": f"{endpoint.url}/in?device={a}&seq=1&data=aa01",
                  "headers": {"X-Tenant": a}, "contentType": "application/json",
                  "body": f'{{"device": "{a}", "data": "aa01", "seq": 1}}'}, "no credentials in the record"
    assert params["device"] == a and params["data"] == "aa01" and params["seqNumber"] == 1
    assert params["station"] == station and params["snr"] == 12.0
    assert [r["dead"] for r in await pipe.fetch("SELECT dead FROM callbacks")] == [True]

    await wait_until(lambda: smtp.to("ops@example.com"), 10, "the alert e-mail")
    await asyncio.sleep(1.0)  # a second alert for the same callback would have come by now
    alerts = smtp.to("ops@example.com")
    assert len(alerts) == 1, "alerts are rate-limited per device type and callback"
    assert "cb-down" in alerts[0]["Subject"] and pipe.ids["deviceType"] in alerts[0].get_content()

    failing = False
    originals = {r.headers["webhook-id"] for r in endpoint.requests}
    assert len(originals) == 4

    def replay(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "program.cli", "replay", *args], cwd=ROOT, timeout=60,
                             env={**os.environ, **isolated.env}, capture_output=True, text=True, check=True)
        return out.stdout

    def delivered(n: int):
        return at_least([r for r in endpoint.requests if r.at > replay_started], n)

    replay_started = time.time()
    assert "replayed 1 " in replay("--device", a)
    got = await wait_until(lambda: delivered(1), 15, "the replay of device A")
    assert got[0].query["device"] == a
    assert "replayed 2 " in replay("--callback", "cb-down", "--before", str(middle))
    await wait_until(lambda: delivered(3), 15, "the replay of B and C's first message")
    assert "replayed 1 " in replay("--since", str(middle))
    got = await wait_until(lambda: delivered(4), 15, "the replay of C's second message")
    assert all(r.headers["Authorization"].startswith("Basic ") for r in got)
    assert sorted((r.query["device"], r.query["seq"]) for r in got) == sorted(
        [(a, "1"), (b, "1"), (c, "1"), (c, "2")])
    assert {r.headers["webhook-id"] for r in got} == originals, "a replay keeps the webhook-id"
    assert "replayed 0 " in replay("--device", a), "what was replayed is not replayed again"

    async def revived() -> bool:
        return [r["dead"] for r in await pipe.fetch("SELECT dead FROM callbacks")] == [False]
    await wait_until(revived, 15, "the dead flag cleared by a successful delivery")
    replayed = await pipe.fetch("SELECT count(*) AS n FROM undelivered_callbacks WHERE replayed_at IS NOT NULL")
    assert replayed[0]["n"] == 4
