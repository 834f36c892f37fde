"""A worker's /ready answers 200 only while every role of the process is ready, 503 otherwise: what a
Kubernetes readiness probe reads (deploy/kubernetes). /status answers 200 either way."""
from __future__ import annotations

from typing import Any

import aiohttp

from program.roles import start_metrics_server


async def _get(port: int, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}") as response:
            return response.status, await response.json()


async def _serve(status: dict[str, Any]) -> tuple[Any, int]:
    runner = await start_metrics_server(0, status)
    port = runner.addresses[0][1]
    return runner, port


async def test_ready_follows_the_roles_readiness_at_every_request() -> None:
    roles_ready = {"ingest": False, "router": False}
    runner, port = await _serve({"roles": ["ingest", "router"],
                                 "ready": lambda: all(roles_ready.values())})
    try:
        assert await _get(port, "/ready") == (503, {"ready": False})
        # /status says the same thing with a 200: a probe on it could not tell.
        assert await _get(port, "/status") == (200, {"roles": ["ingest", "router"], "ready": False})
        roles_ready["ingest"] = True
        assert await _get(port, "/ready") == (503, {"ready": False})
        roles_ready["router"] = True
        assert await _get(port, "/ready") == (200, {"ready": True})
        roles_ready["router"] = False
        assert await _get(port, "/ready") == (503, {"ready": False})
    finally:
        await runner.cleanup()


async def test_ready_takes_a_plain_value_and_is_not_ready_without_one() -> None:
    runner, port = await _serve({"roles": ["simulate"], "ready": True})
    try:
        assert await _get(port, "/ready") == (200, {"ready": True})
    finally:
        await runner.cleanup()
    runner, port = await _serve({"roles": ["relay"]})
    try:
        assert await _get(port, "/ready") == (503, {"ready": False})
    finally:
        await runner.cleanup()
