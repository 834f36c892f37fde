"""A crash is always logged with its exception and traceback; a log line never raises."""
from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys

import orjson
import pytest

from backhaul.logs import JsonFormatter, setup_logging
from backhaul.settings import PROJECT_ROOT
from program.roles import RoleCrashed, until_stopped
from program.supervised import free_port


@pytest.fixture
def lines():
    stream = io.StringIO()
    setup_logging("INFO", role="ingest+router", stream=stream)
    yield lambda: [orjson.loads(line) for line in stream.getvalue().splitlines()]
    logging.getLogger().handlers.clear()


def test_a_line_naming_a_role_keeps_it_and_others_get_the_process_role(lines):
    log = logging.getLogger("t")
    log.error("named", extra={"role": "ingest"})
    log.info("plain")
    assert [(line["msg"], line["role"]) for line in lines()] == [("named", "ingest"), ("plain", "ingest+router")]


def test_the_formatter_never_raises():
    class NoRepr:
        def __repr__(self):
            raise RuntimeError("no")

    def line(msg, args=(), **extra) -> dict:
        record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)
        record.__dict__.update(extra)
        return orjson.loads(JsonFormatter().format(record))

    assert line("bad %d", ("x",))["msg"] == "'bad %d' % ('x',)"
    deep = orjson.loads(b"[" * 1000 + b"]" * 1000)
    values = line("values", ints={1: 2}, big=2 ** 80, obj=NoRepr(), deep=deep, lone="\ud800")
    assert values["msg"] == "values" and values["big"] == str(2 ** 80) and "NoRepr" in values["obj"]


async def test_a_role_that_crashes_is_logged_with_type_message_and_traceback(lines):
    async def ingest():
        await asyncio.sleep(0)
        raise ValueError("the engine broke")

    stop = asyncio.Event()
    task = asyncio.create_task(ingest(), name="ingest")
    with pytest.raises(RoleCrashed):
        await until_stopped(stop, [task])
    [line] = [line for line in lines() if line["msg"] == "role crashed"]
    assert line["level"] == "error" and line["stage"] == "ingest" and line["role"] == "ingest+router"
    assert "Traceback (most recent call last)" in line["exc"]
    assert 'raise ValueError("the engine broke")' in line["exc"] and "ValueError: the engine broke" in line["exc"]


def test_the_api_command_logs_what_ends_it_and_exits_non_zero():
    closed = free_port()  # nothing listens there: the database is unreachable
    env = {**os.environ, "BACKHAUL_DATABASE_URL": f"postgresql://backhaul@127.0.0.1:{closed}/backhaul",
           "BACKHAUL_API_PORT": str(free_port())}
    done = subprocess.run([sys.executable, "-m", "program.cli", "api"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    logged = [orjson.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    [line] = [line for line in logged if line["level"] == "critical"]
    assert line["msg"] == "api stopped by an unexpected error" and line["role"] == "api"
    assert "Traceback (most recent call last)" in line["exc"] and "ConnectionRefusedError" in line["exc"]
