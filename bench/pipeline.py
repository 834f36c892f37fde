"""The pipeline under test: `backhaul worker` subprocesses in a chosen layout of roles."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp

from program.supervised import WorkerProcess

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
