"""The OpenAPI document is true: built from oss.openapi, matching the routes, and fuzzed with no 5xx."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from aiohttp import web

from oss.app import create_app
from oss.openapi import build, document
from tests.api_support import api, check, make_device_type, make_tenant  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
METHODS = {"GET", "POST", "PUT", "DELETE"}


def registered(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        if route.method in METHODS and route.resource is not None:
            path = route.resource.canonical
            if path.startswith("/v2/"):
                out.add((route.method, path[3:].rstrip("/")))
    return out


def documented() -> set[tuple[str, str]]:
    return {(method.upper(), path.rstrip("/")) for path, ops in document()["paths"].items()
            for method in ops if method.upper() in METHODS}


async def test_document_file_is_the_built_one():
    assert document() == build(), "schemas/openapi.json is stale: run `python -m oss.openapi`"


async def test_every_route_is_documented_and_every_path_served(api):
    routes = registered(api.app)
    assert routes - documented() == set(), "routes missing from the document"
    assert documented() - routes == set(), "documented operations the app does not serve"


async def test_rate_limits_answer_429_with_retry_after(api):
    t = await make_tenant(api, "Limited")
    app = create_app(api.pool, rate_limits="device-list=2/60,device-messages=1/60")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        c = t.client.as_user(t.client.login, t.client.token)
        c.base = f"http://127.0.0.1:{port}/v2"
        dt = await make_device_type(c, t)
        check(await c.post("/devices/", {"id": "AA", "name": "a", "pac": "0" * 16, "deviceTypeId": dt}), 201)
        check(await c.post("/devices/", {"id": "BB", "name": "b", "pac": "0" * 16, "deviceTypeId": dt}), 201)
        assert [(await c.get("/devices/")).status for _ in range(3)] == [200, 200, 429]
        r = await c.get("/devices/")
        assert r.status == 429 and 1 <= int(r.headers["Retry-After"]) <= 60 and "message" in r.body
        assert [(await c.get(f"/devices/{d}/messages")).status for d in ("AA", "AA", "BB")] == [200, 429, 200]
        check(await c.get(f"/device-types/{dt}"), 200)
    finally:
        await runner.cleanup()


async def test_schemathesis_finds_no_server_error(api):
    """Fuzz every documented operation (as an admin of its own group) and fail on any 5xx.

    schemathesis is a test dependency: its command is taken beside this interpreter, so the test
    runs wherever the test extras are installed, whatever PATH says."""
    command = Path(sys.executable).parent / "schemathesis"
    assert command.exists(), f"{command} is missing: install the test extras (pip install -e '.[test]')"
    t = await make_tenant(api, "Fuzz")
    dt = await make_device_type(t.client, t)
    check(await t.client.post("/devices/", {"id": "F0F0", "name": "f", "pac": "0" * 16, "deviceTypeId": dt}), 201)
    examples = os.environ.get("BACKHAUL_FUZZ_EXAMPLES", "8")
    proc = await asyncio.create_subprocess_exec(
        str(command), "run", f"{api.base}/openapi.json", "-a", f"{t.client.login}:{t.client.token}",
        "--checks", "not_a_server_error", "-n", examples, "--seed", "7", "--generation-database", "none",
        "--no-color", "--phases", "coverage,fuzzing", "-w", "1",
        "--exclude-path", "/api-users/{id}/renew-credential",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    text = out.decode(errors="replace")
    sys.stdout.write(text[-3000:])
    assert proc.returncode == 0, text[-6000:]
