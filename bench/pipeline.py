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
    # Two instances of ingest and of delivery (issue 15): each pair shares its consumer group's partitions.
    "6": ["ingest", "ingest", "router", "delivery", "delivery", "store,relay"],
}
DEFAULT_LAYOUT = "4"
ROLES = {"ingest", "router", "delivery", "store", "relay"}
# Roles that may run in several processes: consumer-group stages share their partitions.
REPEATABLE = {"ingest", "router", "delivery", "store"}


def parse_layout(spec: str) -> list[str]:
    """`4` (a preset) or an explicit layout such as `ingest,router;delivery;store,relay`; a stage named in
    two processes runs as two instances (`ingest;ingest;router;delivery;store,relay`)."""
    if spec in LAYOUTS:
        return list(LAYOUTS[spec])
    groups = [",".join(r.strip() for r in g.split(",")) for g in spec.split(";") if g.strip()]
    roles = [r for g in groups for r in g.split(",")]
    repeated = {r for r in roles if roles.count(r) > 1}
    if set(roles) != ROLES or repeated - REPEATABLE or any(len(set(g.split(","))) != len(g.split(",")) for g in groups):
        raise ValueError(f"--workers {spec!r}: give a preset ({', '.join(LAYOUTS)}) or a layout naming each of "
                         f"{', '.join(sorted(ROLES))}, processes separated by ';' (only "
                         f"{', '.join(sorted(REPEATABLE))} may be named in more than one process, and no role "
                         f"twice in one)")
    return groups


def process_names(layout: list[str]) -> list[str]:
    """A name for each process of `layout`: its roles, and `#2`, `#3`... for a second instance."""
    names: list[str] = []
    for roles in layout:
        n = layout[:len(names) + 1].count(roles)
        names.append(roles if n == 1 else f"{roles}#{n}")
    return names


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
        names = process_names([w.roles for w in self.workers])
        return {name: w.proc.pid for name, w in zip(names, self.workers, strict=True) if w.proc}

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
