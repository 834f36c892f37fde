"""A worker whose role cannot run logs why, with the traceback, and exits non-zero."""
from __future__ import annotations

import asyncio

import orjson
import pytest

from program.supervised import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_a_worker_that_crashes_logs_the_exception_and_its_traceback(isolated, workers):
    closed = free_port()  # nothing listens there: the store's database is unreachable
    worker = workers("store", isolated, BACKHAUL_DATABASE_URL=f"postgresql://backhaul@127.0.0.1:{closed}/x")
    code = await asyncio.wait_for(asyncio.to_thread(worker.proc.wait), 90)
    assert code == 1
    lines = [orjson.loads(line) for line in worker.log_path.read_text().splitlines() if line.startswith("{")]
    [crash] = [line for line in lines if line["level"] == "critical"]
    assert crash["msg"] == "worker stopped by an unexpected error" and crash["role"] == "store"
    assert "Traceback (most recent call last)" in crash["exc"]
    assert "ConnectionRefusedError" in crash["exc"] and "create_pool" in crash["exc"]
