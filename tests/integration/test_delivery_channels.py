"""Channels on the real stack: URL (GET/POST/PUT; form, JSON, text; variables escaped for the
URL, header values and bodies; credentials as Basic auth, never in a log), BATCH_URL
(everything within 1 s in one request) and EMAIL to a real SMTP server."""
from __future__ import annotations

import base64
import urllib.parse

import orjson
import pytest
from aiohttp import web

from tests.conftest import at_least, frame, free_port, publish_frames, wait_until

pytestmark = pytest.mark.integration

GRAMMAR = "txt::char:5 level::uint:8 nl::char:1"
PAYLOAD = "4120422643" + "2a" + "0a"  # "A B&C", 42, "\n"
TEXT = "A B&C"
PASSWORDS = ("p@ss-w0rd", "hunter2-secret")


def by_path(receiver, path: str, n: int = 1):
    return at_least([r for r in receiver.requests if r.path == path], n)


async def test_url_methods_content_types_escaping_and_credentials(pipeline, receiver, make_receiver):
    failing = await make_receiver(lambda request, rec: _status(500))
    base = receiver.url
    host = base.removeprefix("http://")
    callbacks = [
        {"id": "get", "http_method": "GET", "url": base + "/get/{device}?txt={customData#txt}&seq={seqNumber}",
         "headers": {"X-Txt": "{customData#txt}", "X-Fixed": "fixed value"}},
        {"id": "form", "http_method": "POST", "url": base + "/form",
         "body_template": "device={device}&txt={customData#txt}&level={customData#level}"},
        {"id": "json", "http_method": "PUT", "url": base + "/json", "content_type": "application/json",
         "body_template": '{"device": "{device}", "txt": "{customData#txt}", "seq": {seqNumber}, '
                          '"snr": {snr}, "note": "seq {seqNumber} of {device}"}'},
        {"id": "text", "http_method": "POST", "url": base + "/text", "content_type": "text/plain",
         "body_template": "device {device} says {customData#txt}"},
        {"id": "auth", "http_method": "POST", "url": f"http://alice:p%40ss-w0rd@{host}/auth?d={{device}}"},
        {"id": "auth-500", "http_method": "GET", "url": f"http://bob:hunter2-secret@{failing.url[7:]}/x"},
        {"id": "auth-refused", "http_method": "GET",
         "url": f"http://bob:hunter2-secret@127.0.0.1:{free_port()}/x?d={{device}}"},
        {"id": "header-newline", "http_method": "GET", "url": base + "/never", "headers": {"X-Nl": "{customData#nl}"}},
    ]
    pipe = await pipeline(callbacks, payload_config=GRAMMAR,
                          env={"BACKHAUL_LOG_LEVEL": "DEBUG", "BACKHAUL_RETRY_SCHEDULE_S": "0.2"})
    device = pipe.devices[0]
    await publish_frames([frame(device, 5, station=pipe.stations[0], data=PAYLOAD)])

    get = (await wait_until(lambda: by_path(receiver, f"/get/{device}"), 15, "the GET callback"))[0]
    assert get.method == "GET" and get.body == b""
    assert get.query == {"txt": TEXT, "seq": "5"}
    assert get.headers["X-Txt"] == TEXT and get.headers["X-Fixed"] == "fixed value"

    form = (await wait_until(lambda: by_path(receiver, "/form"), 15, "the form callback"))[0]
    assert form.method == "POST" and form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form.body.decode() == f"device={device}&txt=A+B%26C&level=42"
    assert urllib.parse.parse_qs(form.body.decode()) == {"device": [device], "txt": [TEXT], "level": ["42"]}

    put = (await wait_until(lambda: by_path(receiver, "/json"), 15, "the JSON callback"))[0]
    assert put.method == "PUT" and put.headers["Content-Type"] == "application/json"
    assert orjson.loads(put.body) == {"device": device, "txt": TEXT, "seq": 5, "snr": 12.0,
                                      "note": f"seq 5 of {device}"}

    text = (await wait_until(lambda: by_path(receiver, "/text"), 15, "the text callback"))[0]
    assert text.headers["Content-Type"] == "text/plain" and text.body.decode() == f"device {device} says {TEXT}"

    auth = (await wait_until(lambda: by_path(receiver, "/auth"), 15, "the callback with credentials"))[0]
    assert auth.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:p@ss-w0rd").decode()
    assert auth.query == {"d": device}

    failed = await pipe.wait_rows("SELECT * FROM undelivered_callbacks", 3)
    assert {r["callback_id"] for r in failed} == {"auth-500", "auth-refused", "header-newline"}
    [unsafe] = await pipe.fetch("SELECT * FROM callback_attempts WHERE callback_id = 'header-newline'")
    assert (unsafe["status"], unsafe["error_class"]) == (600, "render") and "header injection" in unsafe["info"]
    assert not by_path(receiver, "/never"), "a request that cannot be rendered safely is not sent"
    for row in failed:
        assert "bob" not in orjson.dumps(row["callback"]).decode()
    assert failing.requests[0].headers["Authorization"] == "Basic " + base64.b64encode(b"bob:hunter2-secret").decode()
    infos = " ".join(r["info"] or "" for r in await pipe.fetch("SELECT info FROM callback_attempts"))
    log = pipe.worker.log_path.read_text()
    assert '"level":"debug"' in log, "the log is at DEBUG"
    for secret in (*PASSWORDS, "p%40ss-w0rd", "alice:", "bob:"):
        assert secret not in log, f"{secret!r} reached the worker log"
        assert secret not in infos, f"{secret!r} reached an attempt record"


async def test_batch_url_one_request_per_second_of_messages(pipeline, receiver):
    pipe = await pipeline([
        {"id": "batch-post", "channel": "BATCH_URL", "http_method": "POST", "url": receiver.url + "/batch?l={batch}",
         "line_pattern": "{device};{time};{data};{seqNumber}"},
        {"id": "batch-get", "channel": "BATCH_URL", "http_method": "GET", "url": receiver.url + "/get?lines={batch}",
         "line_pattern": "{device}:{data}"},
    ], devices=20)
    station = pipe.stations[0]
    frames = [frame(d, 1, station=station, data=f"{i:02x}ff") for i, d in enumerate(pipe.devices)]
    await publish_frames(frames)

    post = (await wait_until(lambda: by_path(receiver, "/batch"), 15, "the POST batch"))
    get = (await wait_until(lambda: by_path(receiver, "/get"), 15, "the GET batch"))
    expected = {f"{f['device']};{f['time'] // 1000};{f['data']};1" for f in frames}
    assert len(post) == 1, "20 messages within 1 s go in one request"
    lines = post[0].body.decode().split("\n")
    assert set(lines) == expected and len(lines) == 20
    assert post[0].query["l"] == post[0].body.decode(), "{batch} in the URL holds the same lines"
    assert post[0].headers["Content-Type"] == "text/plain"
    assert len(get) == 1 and get[0].body == b""
    assert set(get[0].query["lines"].split("\n")) == {f"{f['device']}:{f['data']}" for f in frames}

    later = [frame(d, 2, station=station, data="beef") for d in pipe.devices[:3]]
    await publish_frames(later)
    post = await wait_until(lambda: by_path(receiver, "/batch", 2), 15, "the second POST batch")
    assert set(post[1].body.decode().split("\n")) == {f"{f['device']};{f['time'] // 1000};beef;2" for f in later}
    results = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE callback_id = 'batch-post' "
                                   "AND status IS NOT NULL", 23)
    assert {(r["status"], r["attempt"]) for r in results} == {(200, 1)}, "every message of a batch is recorded"


async def test_email_channel_to_a_real_smtp_server(pipeline, smtp):
    pipe = await pipeline([
        {"id": "mail", "channel": "EMAIL", "recipient": "ops+{device}@example.com",
         "subject": "Message {seqNumber} from {device}", "message": "data={data}\nstation={station}"},
        {"id": "mail-refused", "channel": "EMAIL", "recipient": "nobody@example.com", "subject": "s {device}",
         "message": "m"},
    ], env={**smtp.env, "BACKHAUL_RETRY_SCHEDULE_S": "0.2"})
    device, station = pipe.devices[0], pipe.stations[0]
    await publish_frames([frame(device, 9, station=station, data="c0ffee")])
    mails = await wait_until(lambda: smtp.to(f"ops+{device}@example.com"), 15, "the EMAIL callback")
    assert mails[0]["Subject"] == f"Message 9 from {device}"
    assert mails[0].get_content().replace("\r\n", "\n").rstrip("\n") == f"data=c0ffee\nstation={station}"
    sent = await pipe.wait_rows("SELECT * FROM callback_attempts WHERE callback_id = 'mail' AND status IS NOT NULL", 1)
    assert (sent[0]["status"], sent[0]["error_class"]) == (250, "ok")
    refused = (await pipe.wait_rows("SELECT * FROM undelivered_callbacks", 1))[0]
    assert refused["callback_id"] == "mail-refused" and refused["status"] == 600
    assert "nobody@example.com" in refused["message"]
    assert refused["callback"] == {"recipient": "nobody@example.com", "subject": f"s {device}", "message": "m"}


async def _status(code: int) -> web.Response:
    return web.Response(status=code)
