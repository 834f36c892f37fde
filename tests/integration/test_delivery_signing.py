"""Standard Webhooks signatures on the real stack: webhook-id stable across retries (and
across a retried batch), webhook-timestamp per attempt, webhook-signature verified; unsigned
callbacks carry a webhook-id too, the same on a retry."""
from __future__ import annotations

import time

import pytest
from aiohttp import web

from backhaul.signing import verify
from tests.conftest import at_least, frame, publish_frames, wait_until

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def fail_first(times: int):
    seen: dict[str, int] = {}

    async def behave(request, rec):
        key = rec.headers.get("webhook-id", rec.path)
        seen[key] = seen.get(key, 0) + 1
        return web.Response(status=500 if seen[key] <= times else 200)
    return behave


async def test_signed_retries_keep_their_webhook_id(pipeline, make_receiver):
    single = await make_receiver(fail_first(2))
    batch = await make_receiver(fail_first(1))
    plain = await make_receiver(fail_first(1))
    pipe = await pipeline([
        {"id": "signed", "url": single.url + "/s", "http_method": "POST", "content_type": "application/json",
         "body_template": '{"device": "{device}", "seq": {seqNumber}}', "signing_secret": SECRET},
        {"id": "signed-batch", "channel": "BATCH_URL", "url": batch.url + "/b", "http_method": "POST",
         "line_pattern": "{device};{seqNumber}", "signing_secret": SECRET},
        {"id": "plain", "url": plain.url + "/p", "http_method": "GET"},
    ], devices=3, env={"BACKHAUL_RETRY_SCHEDULE_S": "0.5,0.5", "BACKHAUL_RETRY_JITTER": "0.5",
                       "BACKHAUL_BREAKER_FAILURES": "100"})
    device = pipe.devices[0]
    await publish_frames([frame(d, 3, station=pipe.stations[0]) for d in pipe.devices])

    tries = await wait_until(lambda: at_least([r for r in single.requests if device in r.body.decode()], 3), 15,
                             "three attempts")
    ids = {r.headers["webhook-id"] for r in tries}
    message = (await pipe.fetch("SELECT id FROM messages WHERE device_id = $1", device))[0]["id"]
    assert ids == {f"{message}/signed"}, "one webhook-id, the delivery's, across every attempt"
    stamps = [int(r.headers["webhook-timestamp"]) for r in tries]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 30
    for r in tries:
        assert r.headers["webhook-signature"].startswith("v1,")
        assert verify(SECRET, r.headers, r.body)
        assert not verify(SECRET, r.headers, r.body + b" ")
        assert not verify("whsec_" + "A" * 32, r.headers, r.body)

    batches = await wait_until(lambda: at_least(batch.requests, 2), 15, "a batch and its retry")
    assert len({r.headers["webhook-id"] for r in batches}) == 1, "a retried batch keeps its webhook-id"
    assert batches[0].headers["webhook-id"].startswith("batch:")
    assert sorted(batches[0].body.decode().split("\n")) == sorted(batches[1].body.decode().split("\n"))
    assert all(verify(SECRET, r.headers, r.body) for r in batches)

    plain_tries = await wait_until(lambda: at_least(plain.requests, 6), 15, "the unsigned callbacks and their retry")
    assert all("webhook-id" in r.headers for r in plain_tries), "every request carries a webhook-id, signed or not"
    assert not any(h.lower() in ("webhook-signature", "webhook-timestamp") for r in plain_tries for h in r.headers)
    by_id: dict[str, int] = {}
    for r in plain_tries:
        by_id[r.headers["webhook-id"]] = by_id.get(r.headers["webhook-id"], 0) + 1
    messages = await pipe.fetch("SELECT id FROM messages")
    assert by_id == {f"{m['id']}/plain": 2 for m in messages}, "one webhook-id per delivery, the same on its retry"
