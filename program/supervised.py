"""A `backhaul worker` child process watched through its /status and /metrics port.

Used wherever one process drives others: the benchmark and the tests.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from backhaul.settings import PROJECT_ROOT

# Ports handed out by free_port lie outside the kernel's ephemeral range: a port from that range (what
# binding port 0 returns) can be taken by any outgoing connection of any process between the moment it is
# chosen and the moment the child binds it (seen in CI: a worker's metrics port taken by a client socket of
# the other test process). Outside the range only an explicit bind can take it. Above the range by default
# (no service of ours defaults there), below it when the space above is too small.
_handed_out: set[int] = set()


def _port_choices() -> range:
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if 65535 - high >= 2000:
        return range(high + 1, 65536)
    return range(max(1024, low - 8000), low)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(offsets: range | list[int]) -> int:
    """A first port P with P + each offset free now and out of the ephemeral range (see above)."""
    choices = _port_choices()
    span = max(offsets)
    for _ in range(2000):
        base = random.choice(choices[: len(choices) - span])
        ports = [base + offset for offset in offsets]
        if any(port in _handed_out for port in ports) or not all(_bindable(port) for port in ports):
            continue
        _handed_out.update(ports)
        return base
    raise RuntimeError(f"no free block of ports {list(offsets)} in {choices}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now and that no outgoing connection will take."""
    return free_port_block([0])


def terminate(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """Stop `process` cleanly (SIGTERM), killing it if it has not ended within `grace_s`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(grace_s)


class WorkerProcess:
    """One `backhaul worker --roles ...` with its own /status port and log file."""

    def __init__(self, roles: str, env: dict[str, str], log_path: Path) -> None:
        self.roles = roles
        self.env = env
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "WorkerProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "program.cli", "worker", "--roles", self.roles, "--metrics-port", str(self.port)],
            env=self.env, cwd=PROJECT_ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        return self

    async def status(self, session: aiohttp.ClientSession) -> dict | None:
        """The worker's /status, None while it does not answer; raises if it exited."""
        assert self.proc is not None, "start() first"
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker {self.roles} exited with {self.proc.returncode}:\n{self.log_tail()}")
        with contextlib.suppress(aiohttp.ClientError, OSError, ValueError):
            async with session.get(f"http://127.0.0.1:{self.port}/status") as resp:
                return await resp.json()
        return None

    async def wait_ready(self, timeout: float = 60.0) -> dict:
        """Wait until every role of the worker says it is ready."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                status = await self.status(session)
                if status and status.get("ready"):
                    return status
                await asyncio.sleep(0.2)
        raise TimeoutError(f"worker {self.roles} not ready in {timeout} s:\n{self.log_tail()}")

    async def metrics(self, session: aiohttp.ClientSession | None = None) -> str:
        async with contextlib.AsyncExitStack() as stack:
            if session is None:
                session = await stack.enter_async_context(aiohttp.ClientSession())
            async with session.get(f"http://127.0.0.1:{self.port}/metrics") as resp:
                return await resp.text()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def kill9(self) -> None:
        """Kill the worker at once, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
