"""The pipeline under test: `backhaul worker` subprocesses in a chosen layout of roles."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from backhaul.settings import PROJECT_ROOT
from bench.receiver import free_port

# --workers N: how the five roles are spread over N processes (the machine has 2 cores).
LAYOUTS: dict[str, list[str]] = {
    "1": ["ingest,router,delivery,store,relay"],
    "2": ["ingest,router", "delivery,store,relay"],
    "3": ["ingest", "router,delivery", "store,relay"],
    "4": ["ingest", "router", "delivery", "store,relay"],
}
DEFAULT_LAYOUT = "4"
ROLES = {"ingest", "router", "delivery", "store", "relay"}


def parse_layout(spec: str) -> list[str]:
    """`4` (a preset) or an explicit layout such as `ingest,router;delivery;store,relay`."""
    if spec in LAYOUTS:
        return list(LAYOUTS[spec])
    groups = [g.strip() for g in spec.split(";") if g.strip()]
    roles = [r.strip() for g in groups for r in g.split(",")]
    if sorted(roles) != sorted(ROLES):
        raise ValueError(f"--workers {spec!r}: give a preset ({', '.join(LAYOUTS)}) or a layout naming each of "
                         f"{', '.join(sorted(ROLES))} exactly once, processes separated by ';'")
    return groups


class WorkerProcess:
    """One `backhaul worker --roles ...` with its own /status port and log file."""

    def __init__(self, roles: str, env: dict[str, str], log_path: Path) -> None:
        self.roles = roles
        self.env = env
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backhaul.cli", "worker", "--roles", self.roles, "--metrics-port", str(self.port)],
            env=self.env, cwd=PROJECT_ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True)

    async def status(self, session: aiohttp.ClientSession) -> dict | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker {self.roles} exited with {self.proc.returncode}:\n{self.log_tail()}")
        with contextlib.suppress(aiohttp.ClientError, OSError, ValueError):
            async with session.get(f"http://127.0.0.1:{self.port}/status") as resp:
                return await resp.json()
        return None

    async def metrics(self, session: aiohttp.ClientSession) -> str:
        async with session.get(f"http://127.0.0.1:{self.port}/metrics") as resp:
            return await resp.text()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Pipeline:
    """Every worker process of one layout."""

    def __init__(self, layout: list[str], env: dict[str, str], log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **env}
        self.workers = [WorkerProcess(roles, full_env, log_dir / f"worker-{i}-{roles.replace(',', '+')}.log")
                        for i, roles in enumerate(layout)]

    def start(self) -> None:
        for w in self.workers:
            w.start()

    async def wait_ready(self, config_records: int, timeout: float = 90.0) -> None:
        """Wait until every worker is ready and every configuration view holds `config_records` rows."""
        deadline = time.monotonic() + timeout
        pending = list(self.workers)
        async with aiohttp.ClientSession() as session:
            while pending:
                if time.monotonic() > deadline:
                    tails = "\n".join(f"--- {w.roles}\n{w.log_tail()}" for w in pending)
                    raise TimeoutError(f"workers not ready in {timeout:.0f} s:\n{tails}")
                for w in list(pending):
                    st = await w.status(session)
                    if st and st.get("ready") and (st.get("config") is None or st["config"] >= config_records):
                        pending.remove(w)
                await asyncio.sleep(0.2)

    def pids(self) -> dict[str, int]:
        return {w.roles: w.proc.pid for w in self.workers if w.proc}

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
