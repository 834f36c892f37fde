"""What each delivery channel makes of a delivery (workers/channels/), against a real HTTP server on
127.0.0.1 in this process: the endpoint it counts against, the request a URL delivery and a BATCH_URL
batch send, the answer timeout, and what a BIDIR answer gives, at its deadline and a millisecond after.
The loop around the channels (Kafka, retries, the retry store) is tested on the real stack."""
from __future__ import annotations

import base64
import dataclasses
import json

import aiohttp
import pytest
from aiohttp import web

from backhaul.callback_secrets import seal_callback
from backhaul.configview import ConfigView
from backhaul.kafka import Out
from backhaul.secretbox import Keyring, new_key
from backhaul.settings import Settings
from backhaul.signing import signature_headers
from callback_language.compiled import CompiledCallbacks
from callback_language.downlink import InfoCode
from schemas.deliveries import http_request, new_delivery, replayed
from workers.attempt import Outcome
from workers.channels import CHANNELS, Answered, Context
from workers.channels.bidir import NOT_A_DOWNLINK, downlink_records, parse_bidir_answer
from workers.channels.http import answer_timeout
from workers.credentials import CallbackCredentials

SETTINGS = Settings()


def delivery(channel: str = "URL", *, url: str = "http://127.0.0.1:1/cb", callback_id: str = "cb", n: int = 1,
             downlink: bool = False, created_ms: int = 1_700_000_000_000) -> dict:
    d = new_delivery({"id": f"m{n}", "device": "00AB12", "time": 1_700_000_000_000 + n, "data": f"{n:02x}"},
                     callback_id=callback_id, kind="DATA_BIDIR" if downlink else "DATA_UPLINK", channel=channel,
                     device_type_id="dt", message_id=f"m{n}", origin_ms=1, created_ms=created_ms,
                     variables={"device": "00AB12", "data": f"{n:02x}", "seqNumber": n}, downlink=downlink)
    if channel == "URL":
        d["request"] = http_request("POST", url, {"X-Seq": str(n)}, f"body {n}".encode(), "text/plain")
    return d


class Receiver:
    """A real HTTP server that records what it got and answers with `status` and `body`."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, dict[str, str], bytes]] = []
        self.status, self.body, self.headers = 200, b"", {}

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((request.method, str(request.rel_url), dict(request.headers), await request.read()))
        return web.Response(status=self.status, body=self.body, headers=self.headers)


@pytest.fixture
async def receiver():
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield rec
    await runner.cleanup()


@pytest.fixture
def acks() -> list[tuple]:
    """The ACKNOWLEDGE (infoCode, reason) the channels asked the loop for."""
    return []


@pytest.fixture
async def context(acks):
    view = ConfigView()

    async def grant(d, data_hex):
        return Answered([Out("downlinks", d["id"].encode(), (data_hex or d["downlinkTemplate"]).encode())],
                        "downlink granted")

    def ack(d, code, reason=None):
        acks.append((int(code), reason))
        return Out("device-events", b"k", json.dumps([int(code), reason]).encode())

    async with aiohttp.ClientSession() as session:
        yield Context(SETTINGS, view, session, CallbackCredentials(), CompiledCallbacks(view), grant, ack)


def batch_callback(url: str, **extra) -> dict:
    return {"id": "cb", "device_type_id": "dt", "callback_subtype": 0, "channel": "BATCH_URL", "enabled": True,
            "url": url, "http_method": "POST", "line_pattern": "{device};{data};{seqNumber}", "headers": {},
            "updated_at": 1, **extra}


def test_each_channel_counts_against_its_endpoint(context):
    assert CHANNELS["URL"].endpoint(delivery(url="https://Host.example/x?y=1"), None, context) == \
        "https://host.example:443"
    d = delivery(url="")
    assert CHANNELS["URL"].endpoint(d, None, context) is None
    assert CHANNELS["BATCH_URL"].endpoint(delivery("BATCH_URL"), {"method": "POST", "url": "http://b.example:81/"},
                                          context) == "http://b.example:81"
    assert CHANNELS["BATCH_URL"].endpoint(delivery("BATCH_URL"), None, context) is None
    assert CHANNELS["EMAIL"].endpoint(delivery("EMAIL"), None, context) == \
        f"smtp://{SETTINGS.smtp_host}:{SETTINGS.smtp_port}"
    assert CHANNELS["DIRECT"].endpoint(delivery("DIRECT"), None, context) is None
    assert [name for name, ch in CHANNELS.items() if ch.batched] == ["BATCH_URL"]
    assert [name for name, ch in CHANNELS.items() if not ch.calls] == ["DIRECT"]


def test_a_downlink_callbacks_first_attempt_waits_at_most_until_its_answer_is_due():
    """Due `downlink_answer_s` after the uplink's own time (here 1_700_000_000_001 ms), whenever it is sent."""
    s = dataclasses.replace(SETTINGS, callback_timeout_s=10.0, downlink_answer_s=4.0)
    uplink = delivery(downlink=True)["messageTime"]
    assert answer_timeout(delivery(downlink=True), 0, s, now_ms=uplink) == 4.0
    assert answer_timeout(delivery(downlink=True), 0, s, now_ms=uplink + 2_500) == 1.5, "sent late: less time"
    assert answer_timeout(delivery(downlink=True), 0, s, now_ms=uplink + 4_000) == 10.0, \
        "past its deadline: no downlink whatever comes, the call waits as any other"
    assert answer_timeout(delivery(downlink=True), 1, s, now_ms=uplink) == 10.0  # a retry is not read for one
    assert answer_timeout(delivery(downlink=False), 0, s, now_ms=uplink) == 10.0
    assert answer_timeout(delivery(downlink=True), 0, dataclasses.replace(s, downlink_answer_s=30.0),
                          now_ms=uplink) == 10.0


async def test_a_url_delivery_sends_its_rendered_request_with_its_webhook_id(receiver, context):
    receiver.status, receiver.body, receiver.headers = 503, b"busy", {"Retry-After": "120"}
    d = delivery(url=receiver.url + "/cb?x=1")
    cb = {"id": "cb", "callback_subtype": 0}
    outcome = await CHANNELS["URL"].send(d, 0, cb, context)
    (method, path, headers, body) = receiver.got[0]
    assert (method, path, body) == ("POST", "/cb?x=1", b"body 1")
    assert headers["X-Seq"] == "1" and headers["Content-Type"] == "text/plain" and headers["webhook-id"] == d["id"]
    assert (outcome.status, outcome.error_class, outcome.info, outcome.answer, outcome.retry_after) == (
        503, "http_5xx", "HTTP 503", "busy", 120.0)
    replay = {**d, "webhookId": "first-id"}
    await CHANNELS["URL"].send(replay, 3, cb, context)
    assert receiver.got[1][2]["webhook-id"] == "first-id"


async def test_a_url_delivery_of_a_callback_that_is_gone_fails_without_a_request(receiver, context):
    outcome = await CHANNELS["URL"].send(delivery(url=receiver.url), 0, {}, context)
    assert (outcome.status, outcome.error_class, outcome.info) == (600, "other", "callback no longer exists")
    assert receiver.got == []


async def test_a_batch_is_one_request_of_its_members_lines_in_order_with_a_stable_id(receiver, context):
    context.view.callbacks["cb"] = batch_callback(receiver.url + "/batch?lines={batch}")
    members = [(delivery("BATCH_URL", n=n), 0) for n in (3, 1, 2)]
    batch = CHANNELS["BATCH_URL"].batch("cb", members, context)
    assert batch.failure is None
    assert batch.endpoint == receiver.url
    assert batch.request["method"] == "POST" and batch.request["body"] == "00AB12;03;3\n00AB12;01;1\n00AB12;02;2"
    again = CHANNELS["BATCH_URL"].batch("cb", list(reversed(members)), context)
    assert again.id == batch.id and batch.id.startswith("batch:") and len(batch.id) == 6 + 32
    other = CHANNELS["BATCH_URL"].batch("cb", members[:2], context)
    assert other.id != batch.id
    outcome = await batch.send()
    (method, path, headers, body) = receiver.got[0]
    assert method == "POST" and body == b"00AB12;03;3\n00AB12;01;1\n00AB12;02;2"
    assert path.startswith("/batch?lines=00AB12%3B03%3B3%0A") and headers["webhook-id"] == batch.id
    assert outcome.ok


async def test_a_batch_whose_callback_is_gone_or_broken_fails_every_member(context):
    members = [(delivery("BATCH_URL"), 0)]
    gone = CHANNELS["BATCH_URL"].batch("cb", members, context)
    assert gone.failure is not None and gone.failure.info == "callback no longer exists or does not compile"
    assert gone.send is None and gone.request is None
    context.view.callbacks["cb"] = batch_callback("http://127.0.0.1:1/b", line_pattern="{nope")
    broken = CHANNELS["BATCH_URL"].batch("cb", members, context)
    assert broken.failure is not None and broken.failure.status == 600


async def test_a_batch_waits_for_its_answer_as_long_as_its_shortest_member(context):
    context.view.callbacks["cb"] = batch_callback("http://127.0.0.1:1/b")
    s = context.settings
    members = [(delivery("BATCH_URL", n=1), 1), (delivery("BATCH_URL", n=2, downlink=True), 0)]
    assert min(answer_timeout(d, a, s) for d, a in members) == min(s.callback_timeout_s, s.downlink_answer_s)
    batch = CHANNELS["BATCH_URL"].batch("cb", members, context)
    assert batch.failure is None and batch.send is not None


# BIDIR answers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("status, body, kind, reason", [
    (204, b"", "no_data", None),
    (200, b'{"00ab12": {"noData": true}}', "no_data", None),
    (200, b'{"AB12": {"downlinkData": "0123456789ABCDEF"}}', "data", None),
    (200, b'\xef\xbb\xbf{"ab12": {"downlinkData": "0123456789abcdef"}}', "data", None),
    (500, b"", "invalid", "HTTP status 500"),
    (200, b"  ", "invalid", "HTTP 200 with an empty body: answer 204 for no downlink"),
    (200, b"not json", "invalid", "not JSON"),
    (200, b"[1]", "invalid", "got list"),
    (200, b'{"FFFF": {"noData": true}}', "invalid", "no entry for device 00AB12"),
    (200, b'{"ab12": {"noData": true}, "00AB12": {"noData": true}}', "invalid", "more than one entry"),
    (200, b'{"ab12": "0123456789abcdef"}', "invalid", "must be a JSON object"),
    (200, b'{"ab12": {"downlinkData": "0123456789abcdef", "noData": true}}', "invalid", "both"),
    (200, b'{"ab12": {"noData": false}}', "invalid", "neither"),
    (200, b'{"ab12": {"downlinkData": "0123"}}', "invalid", None),
])
def test_a_bidir_answer_is_read_for_its_device(status, body, kind, reason):
    answer = parse_bidir_answer("00AB12", status, "application/json", body)
    assert answer.kind == kind
    if kind == "data":
        assert answer.data_hex == "0123456789abcdef"
    if reason:
        assert reason in answer.reason
    if reason and reason.startswith("HTTP 200"):
        assert answer.reason == reason
    if kind == "invalid":
        assert answer.reason


async def test_a_bidir_answer_at_its_deadline_counts_and_a_millisecond_later_is_no_answer(context, acks):
    """The deadline is counted from the uplink's own time, not from when the router rendered the delivery
    (here 5 s after the uplink)."""
    d = delivery(downlink=True, created_ms=1_700_000_005_000)
    ok = Outcome(200, "ok", None, 5.0, body=b'{"00AB12": {"downlinkData": "0011223344556677"}}')
    deadline = d["messageTime"] + int(context.settings.downlink_answer_s * 1000)
    granted = await downlink_records(d, ok, deadline, context)
    assert [o.value for o in granted.records] == [b"0011223344556677"] and granted.info == "downlink granted"
    late = await downlink_records(d, ok, deadline + 1, context)
    assert acks == [(int(InfoCode.NO_ANSWER), "No answer: the answer came 0.0 s after its deadline")]
    assert len(late.records) == 1
    assert late.info == "downlink failed (NO_ANSWER): the answer came 0.0 s after its deadline"


async def test_a_failed_or_invalid_bidir_answer_is_acknowledged_and_no_data_gives_nothing(context, acks):
    d = delivery(downlink=True)
    failed = Outcome(600, "timeout", "timeout after 1.0 s", 1000.0)
    assert (await downlink_records(d, failed, d["createdAt"] + 100, context)).info == \
        "downlink failed (NO_ANSWER): timeout after 1.0 s"
    error = Outcome(500, "http_5xx", "HTTP 500", 5.0)
    assert (await downlink_records(d, error, d["createdAt"] + 100, context)).info == \
        "downlink failed (NO_ANSWER): HTTP 500"
    invalid = Outcome(200, "ok", None, 5.0, body=b"[]")
    assert (await downlink_records(d, invalid, d["createdAt"] + 100, context)).info == \
        "downlink failed (INVALID_PAYLOAD): body must be a JSON object keyed by device id, got list"
    nothing = Outcome(204, "ok", None, 5.0)
    assert await downlink_records(d, nothing, d["createdAt"] + 100, context) == Answered([], "no downlink (noData)")
    assert acks == [(int(InfoCode.NO_ANSWER), "No answer: timeout after 1.0 s"),
                    (int(InfoCode.NO_ANSWER), "No answer: HTTP 500"),
                    (int(InfoCode.INVALID_PAYLOAD),
                     "Invalid payload: body must be a JSON object keyed by device id, got list")]


async def test_only_the_first_answer_of_a_downlink_callback_is_read(context):
    ok = Outcome(204, "ok", None, 5.0)
    d = delivery(downlink=True)
    retried = await CHANNELS["URL"].answered(d, 2, Outcome(200, "ok", None, 1.0, body=b"[]"), 0, context)
    assert retried == Answered([], NOT_A_DOWNLINK), "a retry that succeeds does not read as a downlink"
    assert await CHANNELS["URL"].answered(d, 3, Outcome(500, "http_5xx", "HTTP 500", 1.0), 0, context) == Answered()
    assert await CHANNELS["URL"].answered(delivery(), 1, Outcome(200, "ok", None, 1.0, body=b"[]"), 0,
                                          context) == Answered()
    assert (await CHANNELS["URL"].answered(d, 1, ok, d["createdAt"], context)).records == []
    assert (await CHANNELS["URL"].answered(d, 1, Outcome(200, "ok", None, 1.0, body=b"[]"), d["createdAt"],
                                           context)).records != []
    assert await CHANNELS["EMAIL"].answered(d, 1, ok, 0, context) == Answered()
    replay = replayed(d, d["createdAt"] + 1)  # sent again from the undelivered list: its first call is no answer
    assert await CHANNELS["URL"].answered(replay, 1, Outcome(200, "ok", None, 1.0, body=b"[]"), replay["createdAt"],
                                          context) == Answered([], NOT_A_DOWNLINK)
    assert answer_timeout(replay, 0, context.settings) == context.settings.callback_timeout_s


async def test_a_direct_downlink_goes_through_the_gate_with_its_template(context):
    d = delivery("DIRECT")
    d["downlinkTemplate"] = "{tapId}{rssi}{time}"
    assert [(o.key, o.value) for o in await CHANNELS["DIRECT"].publish(d, context)] == [
        (d["id"].encode(), b"{tapId}{rssi}{time}")]
    earlier = delivery("DIRECT")
    earlier["downlinkData"] = "0011223344556677"  # routed by an earlier version: rendered by the router
    assert [o.value for o in await CHANNELS["DIRECT"].publish(earlier, context)] == [b"0011223344556677"]


async def test_an_email_delivery_is_handed_to_the_smtp_relay(smtp, acks):
    view = ConfigView()
    settings = dataclasses.replace(SETTINGS, smtp_host=smtp.host, smtp_port=smtp.port)
    async with aiohttp.ClientSession() as session:
        context = Context(settings, view, session, CallbackCredentials(), CompiledCallbacks(view), None, None)
        d = delivery("EMAIL")
        d["email"] = {"recipient": "ops@example.com", "subject": "seq 1", "body": "data 01"}
        assert CHANNELS["EMAIL"].endpoint(d, None, context) == f"smtp://{smtp.host}:{smtp.port}"
        outcome = await CHANNELS["EMAIL"].send(d, 0, {}, context)
        assert (outcome.status, outcome.error_class) == (250, "ok")
        (mail,) = smtp.to("ops@example.com")
        assert mail["Subject"] == "seq 1" and mail.get_content().strip() == "data 01"
        d["email"]["recipient"] = "nobody@example.com"
        refused = await CHANNELS["EMAIL"].send(d, 0, {}, context)
        assert (refused.status, refused.error_class) == (600, "other") and "nobody@example.com" in refused.info


async def test_the_base_channel_refuses_what_its_kind_does_not_do(context):
    from workers.channels.base import Channel

    class Bare(Channel):
        name = "BARE"

    with pytest.raises(NotImplementedError, match="BARE makes no single request"):
        await Bare().send(delivery(), 0, {}, context)
    with pytest.raises(NotImplementedError, match="BARE is not batched"):
        Bare().batch("cb", [], context)
    with pytest.raises(NotImplementedError, match="BARE calls an endpoint"):
        await Bare().publish(delivery(), context)


SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def sealed_callback(url: str, box: Keyring, **extra) -> dict:
    return seal_callback({"id": "cb", "callback_subtype": 0, "url": url.replace("http://", "http://bob:hunter2x@"),
                          "headers": {"X-Api-Key": "key-{device}-9876"}, "signing_secret": SIGNING, **extra}, box)


async def test_secrets_are_opened_at_send_time_signed_and_never_in_the_outcome(receiver, acks):
    box = Keyring([new_key()], "test")
    view = ConfigView()
    async with aiohttp.ClientSession() as session:
        context = Context(SETTINGS, view, session, CallbackCredentials(box), CompiledCallbacks(view), None, None)
        cb = sealed_callback(receiver.url + "/cb", box)
        d = delivery(url=receiver.url + "/cb")
        receiver.status, receiver.body = 500, b"no hunter2x here"
        outcome = await CHANNELS["URL"].send(d, 0, cb, context)
        (_, _, headers, body) = receiver.got[0]
        assert headers["Authorization"] == "Basic " + base64.b64encode(b"bob:hunter2x").decode()
        assert headers["X-Api-Key"] == "key-00AB12-9876"  # a secret header renders the delivery's variables
        assert headers["webhook-id"] == d["id"] and headers["webhook-signature"].startswith("v1,")
        expected = signature_headers(SIGNING, d["id"], body, now=int(headers["webhook-timestamp"]))
        assert headers["webhook-signature"] == expected["webhook-signature"]
        assert outcome.status == 500 and "hunter2x" not in (outcome.info or "")

        view.callbacks["cb"] = sealed_callback(receiver.url + "/b", box, channel="BATCH_URL", http_method="POST",
                                               line_pattern="{device}", headers={"X-Api-Key": "batch-key-9876"},
                                               updated_at=1)
        batch = CHANNELS["BATCH_URL"].batch("cb", [(delivery("BATCH_URL"), 0)], context)
        assert "hunter2x" not in repr(batch.request) and batch.request["contentType"] == "text/plain"
        await batch.send()
        (_, _, headers, body) = receiver.got[1]
        assert headers["Authorization"] == "Basic " + base64.b64encode(b"bob:hunter2x").decode()
        assert headers["X-Api-Key"] == "batch-key-9876" and headers["webhook-id"] == batch.id
        assert headers["Content-Type"] == "text/plain" and body == b"00AB12"

        other_box = Keyring([new_key()], "other")
        stranger = Context(SETTINGS, view, session, CallbackCredentials(other_box), CompiledCallbacks(view), None,
                           None)
        refused = await CHANNELS["URL"].send(d, 0, cb, stranger)
        assert refused.status == 600 and refused.info.startswith("callback secrets: ")
        assert len(receiver.got) == 2  # nothing sent without its secrets


async def test_a_secret_header_that_would_inject_fails_the_attempt_without_a_request(receiver, acks):
    box = Keyring([new_key()], "test")
    view = ConfigView()
    async with aiohttp.ClientSession() as session:
        context = Context(SETTINGS, view, session, CallbackCredentials(box), CompiledCallbacks(view), None, None)
        cb = sealed_callback(receiver.url + "/cb", box, headers={"X-Api-Key": "k-{data}"})
        d = delivery(url=receiver.url + "/cb")
        d["variables"]["data"] = "a\r\nX-Evil: 1"
        outcome = await CHANNELS["URL"].send(d, 0, cb, context)
        assert (outcome.status, outcome.error_class) == (600, "render")
        assert outcome.info == "headers.X-Api-Key: rendered value contains CR, LF or NUL; header injection refused"
        assert receiver.got == []


async def test_a_downlink_callbacks_first_answer_is_read_whole_and_others_only_their_start(receiver, context):
    receiver.body = b"x" * 5000
    first = await CHANNELS["URL"].send(delivery(url=receiver.url, downlink=True), 0, {"id": "cb"}, context)
    assert len(first.body) == 5000 and len(first.answer) == 1024
    later = await CHANNELS["URL"].send(delivery(url=receiver.url), 0, {"id": "cb"}, context)
    assert len(later.body) == 1024
    receiver.status = 204
    d = delivery(url=receiver.url)
    d["request"]["body"] = None
    d["request"]["contentType"] = "text/plain"
    await CHANNELS["URL"].send(d, 0, {"id": "cb"}, context)
    assert receiver.got[-1][2].get("Content-Type") != "text/plain", receiver.got[-1][2]  # no body: not ours


async def test_a_batch_of_replays_keeps_their_first_ids_and_a_failed_batch_keeps_its_id(receiver, context):
    import hashlib

    context.view.callbacks["cb"] = batch_callback(receiver.url + "/batch", headers={"X-Tenant": "t1"})
    members = [({**delivery("BATCH_URL", n=n), "id": f"m{n}/cb#r2", "webhookId": f"m{n}/cb"}, 3) for n in (2, 1)]
    batch = CHANNELS["BATCH_URL"].batch("cb", members, context)
    assert batch.id == "batch:" + hashlib.sha256(b"m1/cb\nm2/cb").hexdigest()[:32]
    assert batch.request["url"] == receiver.url + "/batch" and batch.request["headers"] == {"X-Tenant": "t1"}
    receiver.body = b"x" * 5000
    assert len((await batch.send()).body) == 1024  # nobody asked for a downlink on a first attempt
    asking = [(delivery("BATCH_URL", n=1, downlink=True), 0), (delivery("BATCH_URL", n=2), 2)]
    assert len((await CHANNELS["BATCH_URL"].batch("cb", asking, context).send()).body) == 5000

    context.view.callbacks["cb"] = batch_callback(receiver.url + "/b", line_pattern="{nope", updated_at=5)
    broken = CHANNELS["BATCH_URL"].batch("cb", members, context)
    assert broken.id == batch.id and broken.failure is not None
    assert broken.failure.info == "callback no longer exists or does not compile"
    box = Keyring([new_key()], "sealed elsewhere")
    context.view.callbacks["cb"] = sealed_callback(receiver.url + "/b", box, channel="BATCH_URL", http_method="POST",
                                                   line_pattern="{device}", headers={"X-Api-Key": "k-9876"},
                                                   updated_at=2)
    unopened = CHANNELS["BATCH_URL"].batch("cb", members, context)
    assert unopened.id == batch.id and unopened.failure.info.startswith("callback secrets: ")
    assert unopened.send is None
