"""The customer server of the benchmark: stamps the arrival of every callback.

    GET  /data?device=..&seq=..        DATA callback         -> ("data", device, seq, arrival)
    POST /advanced  {"device", "seqNumber", ...}  DATA_ADVANCED -> ("advanced", device, seq, arrival)
    POST /batch  lines "device;seq"     BATCH_URL callback    -> ("data", device, seq, arrival) per line
    POST /ceiling                       raw aiohttp ceiling requests, only counted
    GET  /stats                         counts as JSON
    GET  /arrivals?since=N              arrivals[N:] as JSON (subprocess mode)

It runs in the benchmark's own process (`InProcessReceiver`) or in a child
process (`SubprocessReceiver`, `python -m bench.receiver --port N`); both
answer the same `counts()` / `arrivals(since)` questions.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time

import aiohttp
import orjson
from aiohttp import web

from program.supervised import free_port

DATA = "data"
ADVANCED = "advanced"

Arrival = tuple[str, str, int, float]  # (kind, device, seqNumber, epoch seconds)


class StampingReceiver:
    """An aiohttp app that records (kind, device, seqNumber, arrival time) per callback."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.counts = {DATA: 0, ADVANCED: 0, "batches": 0, "ceiling": 0, "bad": 0}

    async def data(self, request: web.Request) -> web.Response:
        at = time.time()
        q = request.query
        try:
            self.arrivals.append((DATA, q["device"], int(q["seq"]), at))
            self.counts[DATA] += 1
        except (KeyError, ValueError):
            self.counts["bad"] += 1
        return web.Response(text="ok")

    async def advanced(self, request: web.Request) -> web.Response:
        at = time.time()
        try:
            body = orjson.loads(await request.read())
            self.arrivals.append((ADVANCED, body["device"], int(body["seqNumber"]), at))
            self.counts[ADVANCED] += 1
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.counts["bad"] += 1
        return web.Response(text="ok")

    async def batch(self, request: web.Request) -> web.Response:
        at = time.time()
        self.counts["batches"] += 1
        for line in (await request.text()).split("\n"):
            device, _, seq = line.partition(";")
            try:
                self.arrivals.append((DATA, device, int(seq), at))
                self.counts[DATA] += 1
            except ValueError:
                self.counts["bad"] += 1
        return web.Response(text="ok")

    async def ceiling(self, request: web.Request) -> web.Response:
        await request.read()
        self.counts["ceiling"] += 1
        return web.Response(text="ok")

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.counts)

    async def dump(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.Response(body=orjson.dumps(self.arrivals[since:]), content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/data", self.data)
        app.router.add_post("/advanced", self.advanced)
        app.router.add_post("/batch", self.batch)
        app.router.add_post("/ceiling", self.ceiling)
        app.router.add_get("/stats", self.stats)
        app.router.add_get("/arrivals", self.dump)
        return app


class InProcessReceiver:
    """The receiver on this process's event loop."""

    mode = "in-process"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.receiver = StampingReceiver()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.receiver.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def counts(self) -> dict[str, int]:
        return dict(self.receiver.counts)

    async def arrivals(self, since: int = 0) -> list[Arrival]:
        return self.receiver.arrivals[since:]

    @property
    def pid(self) -> int:
        return os.getpid()  # shares the benchmark's process


class SubprocessReceiver:
    """The same receiver in a child process, so that stamping never waits for the load generator."""

    mode = "subprocess"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20.0) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.receiver", "--port", str(self.port)],
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self._session = aiohttp.ClientSession()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                await self.counts()
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"bench receiver exited with {self.proc.returncode}")
            await asyncio.sleep(0.1)
        raise TimeoutError("bench receiver did not start")

    async def stop(self) -> None:
        if self._session:
            await self._session.close()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def counts(self) -> dict[str, int]:
        assert self._session is not None, "start() first"
        async with self._session.get(f"{self.url}/stats") as resp:
            return await resp.json()

    async def arrivals(self, since: int = 0) -> list[Arrival]:
        assert self._session is not None, "start() first"
        async with self._session.get(f"{self.url}/arrivals", params={"since": str(since)}) as resp:
            return [tuple(a) for a in orjson.loads(await resp.read())]

    @property
    def pid(self) -> int:
        assert self.proc is not None, "start() first"
        return self.proc.pid


def make_receiver(mode: str) -> InProcessReceiver | SubprocessReceiver:
    return SubprocessReceiver() if mode == "subprocess" else InProcessReceiver()


def main() -> None:
    p = argparse.ArgumentParser(description="the benchmark's stamping receiver")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    web.run_app(StampingReceiver().app(), host="127.0.0.1", port=args.port, access_log=None, print=None,
                backlog=1024)


if __name__ == "__main__":
    main()
