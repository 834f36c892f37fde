"""Explicit size limits on the API: bodies per kind (413 naming the limit) and callback templates (400)."""
from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from oss.app import create_app
from oss.params import BodyLimits
from tests.api_support import api, check, make_device_type, make_tenant  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

JSON_LIMIT, BULK_LIMIT = 2_000, 50_000


@pytest.fixture
async def small_limits(api):  # noqa: F811
    """The API with small body limits, on its own port, and an admin client of a fresh tenant."""
    t = await make_tenant(api, "Limits")
    runner = web.AppRunner(create_app(api.pool, body_limits=BodyLimits(JSON_LIMIT, BULK_LIMIT)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    c = t.client.as_user(t.client.login, t.client.token)
    c.base = f"http://127.0.0.1:{runner.addresses[0][1]}/v2"
    try:
        yield t, c
    finally:
        await runner.cleanup()


def too_large(reply, limit: int, what: str) -> None:
    assert reply.status == 413, reply
    assert reply.body["message"] == f"body: the {what} is over the limit of {limit} bytes"
    assert reply.body["errors"] == [{"type": "body", "field": "body",
                                     "message": f"the {what} must be at most {limit} bytes"}]


async def test_a_json_body_over_its_limit_is_refused_with_413(small_limits):
    t, c = small_limits
    body = {"name": "x" * JSON_LIMIT, "groupId": t.group, "contractId": t.contract}
    too_large(await c.post("/device-types/", body), JSON_LIMIT, "JSON body")
    # Without a Content-Length (chunked), the body is cut off as soon as it passes the limit.
    async def chunks():
        yield b'{"name": "' + b"x" * 1500
        yield b"y" * 1500 + b'"}'
    headers = {"Authorization": aiohttp.encode_basic_auth(c.login, c.token), "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{c.base}/device-types/", data=chunks(), headers=headers) as resp:
            assert resp.status == 413 and "2000 bytes" in (await resp.json())["message"]
    check(await c.post("/device-types/", {"name": "small", "groupId": t.group, "contractId": t.contract}), 201)


async def test_bulk_uploads_have_a_larger_limit_of_their_own(small_limits):
    t, c = small_limits
    dt = await make_device_type(c, t)
    rows = "".join(f"{0xD00000 + i:X};{'0' * 16}\n" for i in range(400))  # ~9.6 KB: over the JSON limit
    assert JSON_LIMIT < len(rows) < BULK_LIMIT
    report = check(await c.post("/devices/bulk", csv=rows, params={"deviceTypeId": dt, "dryRun": "true"}), 200)
    assert report["total"] == 400
    too_large(await c.post("/devices/bulk", csv=rows * 6, params={"deviceTypeId": dt}), BULK_LIMIT, "bulk upload")


async def test_callback_templates_over_the_limit_are_refused_at_save(api):  # noqa: F811
    t = await make_tenant(api, "Templates")
    dt = await make_device_type(t.client, t)
    base = {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
            "url": "https://example.com/cb", "httpMethod": "POST"}
    # 40 headers of 1,000 characters each: every one within its own limit, 40 KB together.
    headers = {f"X-H{i}": "v" * 1000 for i in range(40)}
    r = await t.client.post(f"/device-types/{dt}/callbacks", {**base, "headers": headers})
    assert r.status == 400 and r.body["errors"][0]["field"] == "headers"
    assert "must total at most 32768 bytes" in r.body["errors"][0]["message"]
    # 10,000 characters of 4-byte UTF-8 in the body: within its 10,000 characters, over the bytes.
    r = await t.client.post(f"/device-types/{dt}/callbacks", {**base, "bodyTemplate": "\U0001F600" * 9000})
    assert r.status == 400 and r.body["errors"][0]["field"] == "bodyTemplate"
    created = check(await t.client.post(f"/device-types/{dt}/callbacks", {**base, "headers": {"X-A": "b"}}), 201)
    r = await t.client.put(f"/device-types/{dt}/callbacks/{created['id']}", {"headers": headers})
    assert r.status == 400 and r.body["errors"][0]["field"] == "headers"
