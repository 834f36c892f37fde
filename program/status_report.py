"""What `backhaul status` shows: every process of the checkout with its state, pid, uptime,
restarts, group instance id and last exit, from the supervisor's view when one runs, from the
pid files when none does, plus the workers started by hand (their instance files)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from program import processes
from program.instances import running_instances
from program.supervisor import NAME as SUPERVISOR
from program.supervisor import plan_path, read_plan, read_state


@dataclass
class Row:
    name: str
    state: str
    pid: int | None = None
    since: float | None = None
    restarts: int | None = None
    instance: str | None = None
    last_exit: str | None = None
    last_exit_at: float | None = None
    log: list[str] | None = None


def collect(default_names: list[str]) -> tuple[list[Row], list[Row]]:
    """(the supervisor and its processes, the workers started by hand)."""
    instances = {i.pid: i for i in running_instances()}
    state = read_state()
    rows = []
    if state is not None:
        me = state["supervisor"]
        rows.append(Row(SUPERVISOR, "running", me["pid"], me["since"]))
        for p in state["processes"]:
            last = p.get("lastExit") or {}
            rows.append(Row(p["name"], p["state"], p["pid"], p["since"], p["restarts"], None, last.get("reason"),
                            last.get("at"), last.get("log") or None))
    else:
        names = [p.name for p in read_plan()] if plan_path().exists() else default_names
        for name in [SUPERVISOR, *names]:
            pid = processes.pid_of(name)
            rows.append(Row(name, "running" if pid else "stopped", pid, processes.started_at(pid) if pid else None))
    for row in rows:
        if row.pid in instances:
            row.instance = instances[row.pid].id
    listed = {row.pid for row in rows}
    by_hand = [Row(f"worker {','.join(i.roles)}", "running", i.pid, i.since, None, i.id)
               for i in instances.values() if i.pid not in listed]
    return rows, by_hand


def as_json(rows: list[Row], by_hand: list[Row]) -> dict:
    return {"processes": [asdict(r) for r in rows], "byHand": [asdict(r) for r in by_hand]}


def duration(seconds: float) -> str:
    """3d04h, 2h05m, 5m02s, 42s."""
    s = int(max(0, seconds))
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def table(rows: list[Row], by_hand: list[Row], now: float | None = None) -> str:
    """The rows as a text table; the log tail of a process left in a crash loop under it."""
    now = time.time() if now is None else now
    header = ("PROCESS", "STATE", "PID", "UPTIME", "RESTARTS", "INSTANCE", "LAST EXIT")
    lines = []
    for row in rows + by_hand:
        # One line a process: an exit reason taken from a log (an exception's text) may hold line breaks.
        reason = " ".join(row.last_exit.split()) if row.last_exit else ""
        last = f"{reason} ({duration(now - row.last_exit_at)} ago)" if reason and row.last_exit_at else ""
        lines.append((row.name, row.state, str(row.pid or "-"), duration(now - row.since) if row.since else "-",
                      "-" if row.restarts is None else str(row.restarts), row.instance or "-", last))
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header) - 1)]
    out = []
    for line in [header, *lines]:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)) + "  " + line[-1])
    for row in rows:
        if row.state == "crash-loop" and row.log:
            out.append(f"-- last lines of {row.name}'s log:")
            out.extend(f"   {line}" for line in row.log)
    if by_hand:
        out.append(f"({len(by_hand)} worker(s) started by hand, not supervised)")
    return "\n".join(line.rstrip() for line in out)
