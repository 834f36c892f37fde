"""CPU used by each process of the run and by the whole machine (Linux /proc), best effort.

Kafka and PostgreSQL are found through the local stack's pid files; their
CPU includes whatever else uses them at the same time (other tests, the demo).
"""
from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from backhaul.settings import settings

_TICK = os.sysconf("SC_CLK_TCK")

PidSource = Callable[[], list[int]]


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


def _children(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def _pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


POSTGRES_SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "local" / "postgres.sh"


def postgres_data_dir() -> Path | None:
    """The local cluster's data directory, as `deploy/local/postgres.sh where` gives it (as root it lies
    outside the checkout, under /var/lib/postgresql/backhaul/); None when the script cannot say."""
    try:
        done = subprocess.run(["bash", str(POSTGRES_SCRIPT), "where"], capture_output=True, text=True, timeout=10,
                              check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    where = done.stdout.strip()
    return Path(where) if where else None


def stack_sources() -> dict[str, PidSource]:
    """The broker's process and PostgreSQL's processes (postmaster and its backends), when found."""
    state = settings().state_dir
    sources: dict[str, PidSource] = {}
    if int(os.environ.get("BACKHAUL_KAFKA_BROKERS") or 1) > 1:  # the local stack's cluster: every node
        files = sorted((state / "kafka-cluster").glob("node-*/kafka.pid"))
    else:
        files = [state / "kafka" / "kafka.pid"]
    brokers = [pid for pid in map(_pid_file, files) if pid and process_cpu_seconds(pid) is not None]
    if brokers:
        sources["kafka (shared)"] = lambda: brokers
    data = postgres_data_dir()
    postmaster = _pid_file(data / "postmaster.pid") if data else None
    if postmaster and process_cpu_seconds(postmaster) is not None:
        sources["postgresql (shared)"] = lambda: [postmaster, *_children(postmaster)]
    return sources


def machine_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores since boot."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def busy_cores(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """How many cores were busy on average between two `machine_ticks()` samples."""
    if not before or not after or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1), 2)


class CpuMeter:
    """CPU of named processes (or groups of processes) and of the machine, from a start point."""

    def __init__(self, sources: dict[str, PidSource]) -> None:
        self.sources = sources
        self._start: dict[str, dict[int, float]] = {}
        self._machine: tuple[int, int] | None = None
        self._t = 0.0

    def _read(self) -> dict[str, dict[int, float]]:
        out = {}
        for name, source in self.sources.items():
            out[name] = {pid: cpu for pid in source() if (cpu := process_cpu_seconds(pid)) is not None}
        return out

    def start(self, now: float) -> None:
        self._start = self._read()
        self._machine = machine_ticks()
        self._t = now

    def sample(self, now: float) -> dict:
        """CPU seconds per source since `start` (processes born since then count from zero), and cores."""
        elapsed = max(1e-9, now - self._t)
        seconds = {}
        for name, current in self._read().items():
            before = self._start.get(name, {})
            seconds[name] = round(sum(cpu - before.get(pid, 0.0) for pid, cpu in current.items()), 2)
        return {"seconds": round(elapsed, 2), "cpuSeconds": seconds,
                "cores": {k: round(v / elapsed, 2) for k, v in seconds.items()},
                "machineBusyCores": busy_cores(self._machine, machine_ticks()), "machineCores": os.cpu_count()}


def pid_sources(pids: dict[str, int]) -> dict[str, PidSource]:
    return {name: _one_pid(pid) for name, pid in pids.items()}


def _one_pid(pid: int) -> PidSource:
    return lambda: [pid]


async def background_load(seconds: float = 2.0) -> float | None:
    """Busy cores before the load starts: the idle pipeline, the stack, and anything else on the machine."""
    before = machine_ticks()
    await asyncio.sleep(seconds)
    return busy_cores(before, machine_ticks())
