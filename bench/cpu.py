"""CPU used by each process of the run and by the whole machine (Linux /proc), best effort."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


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
    """CPU share (cores) of named processes and of the machine over an interval."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float | None] = {}
        self._machine: tuple[int, int] | None = None
        self._t = 0.0

    def start(self, now: float) -> None:
        self._start = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine = machine_ticks()
        self._t = now

    def stop(self, now: float) -> dict:
        elapsed = max(1e-9, now - self._t)
        shares = {}
        for name, pid in self.pids.items():
            a, b = self._start.get(name), process_cpu_seconds(pid)
            shares[name] = round((b - a) / elapsed, 2) if a is not None and b is not None else None
        return {"processCores": shares, "machineBusyCores": busy_cores(self._machine, machine_ticks()),
                "machineCores": os.cpu_count()}


async def background_load(seconds: float = 2.0) -> float | None:
    """Busy cores before the load starts: the idle pipeline, the stack, and anything else on the machine."""
    before = machine_ticks()
    await asyncio.sleep(seconds)
    return busy_cores(before, machine_ticks())
