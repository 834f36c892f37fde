"""`backhaul supervise`: runs the processes of a plan, restarts the ones that fail, and says why.

`backhaul up` writes the plan (`<state>/run/supervisor-plan.json`: each
process's name, `backhaul` arguments and extra environment) and starts the
supervisor in a session of its own. The supervisor then:

- starts every process of the plan (`program.processes.launch`: log in
  `<state>/logs/NAME.log`, pid file in `<state>/run`), or adopts one that
  already runs (left by a supervisor that was killed);
- watches them (every 0.1 s) and restarts a failed one after a pause that
  doubles, and leaves it stopped after a crash loop, recording why (exit
  code or signal, the last lines of its log): `program.restart_policy`;
- keeps its view in `<state>/run/supervisor.json` (written atomically on every
  change), which `backhaul status` reads;
- takes `start`, `stop`, `restart` NAME and `reload` (read the plan again and
  start what is not running) on its control socket (`program.control`).
  NAME is a process of the plan or one of its roles (`relay` -> `store`).

On SIGTERM or SIGINT the supervisor ends and leaves the processes running
(`backhaul down` stops it first, then them; a new `up` adopts them).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backhaul.settings import settings
from program import control, processes
from program.restart_policy import RestartPolicy, RestartTracker, describe_exit, is_failure

log = logging.getLogger(__name__)

NAME = "supervisor"
POLL_S = 0.1
LOG_TAIL_LINES = 8
LOG_LINE_CHARS = 400

# States of a supervised process.
RUNNING = "running"
BACKOFF = "backoff"  # failed; waiting to be started again
STOPPING = "stopping"
STOPPED = "stopped"  # on request
EXITED = "exited"  # ended cleanly by itself (or by someone's SIGTERM): not restarted, as systemd would not
CRASH_LOOP = "crash-loop"  # failed too often: left stopped until someone starts it


@dataclass(frozen=True)
class Planned:
    """One process of the plan."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def roles(self) -> list[str]:
        """The roles of a `worker --roles ...` process (none for others)."""
        if self.argv[:1] == ["worker"] and "--roles" in self.argv:
            return self.argv[self.argv.index("--roles") + 1].split(",")
        return []


def plan_path() -> Path:
    return processes.run_dir() / "supervisor-plan.json"


def state_path() -> Path:
    return processes.run_dir() / "supervisor.json"


def write_json(path: Path, data: Any) -> None:
    """Replace `path` atomically: a reader sees the old or the new content, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def write_plan(plan: list[Planned]) -> None:
    write_json(plan_path(), [{"name": p.name, "argv": p.argv, "env": p.env} for p in plan])


def read_plan() -> list[Planned]:
    return [Planned(p["name"], list(p["argv"]), dict(p.get("env") or {}))
            for p in json.loads(plan_path().read_text())]


def read_state() -> dict | None:
    """The supervisor's last written view if that supervisor still runs, else None."""
    try:
        state = json.loads(state_path().read_text())
    except (OSError, ValueError):
        return None
    me = state.get("supervisor") or {}
    if not me.get("pid") or processes.start_time(me["pid"]) != me.get("started") or not processes.alive(me["pid"]):
        return None
    return state


def log_tail(name: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a process's log (each cut to LOG_LINE_CHARS)."""
    path = processes.log_dir() / f"{name}.log"
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [line[:LOG_LINE_CHARS] for line in text.splitlines() if line.strip()][-lines:]


def why_from_log(tail: list[str]) -> str | None:
    """What the last error line of a log says: a JSON log line's message (and exception type),
    or a traceback's last line."""
    for line in reversed(tail):
        try:
            entry = json.loads(line)
        except ValueError:
            if line.startswith(("Traceback", " ")):
                continue
            return line.strip()
        if isinstance(entry, dict) and entry.get("level") in ("critical", "error"):
            exc = (entry.get("exc") or "").strip().splitlines()
            return f"{entry.get('msg')}" + (f" ({exc[-1]})" if exc else "")
    return None


class Child:
    """One supervised process and what happened to it."""

    def __init__(self, planned: Planned, policy: RestartPolicy) -> None:
        self.planned = planned
        self.tracker = RestartTracker(policy)
        self.proc: subprocess.Popen[bytes] | None = None  # ours; None for an adopted process
        self.pid: int | None = None
        self.since: float | None = None
        self.state = STOPPED
        self.restarts = 0
        self.last_exit: dict | None = None
        self.restart_at: float | None = None
        self.lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.planned.name

    def launch(self) -> None:
        self.proc = processes.launch(self.name, self.planned.argv, self.planned.env)
        self.pid, self.since, self.state, self.restart_at = self.proc.pid, time.time(), RUNNING, None

    def adopt(self, pid: int) -> None:
        self.proc, self.pid, self.state = None, pid, RUNNING
        self.since = processes.started_at(pid) or time.time()

    def returncode(self) -> int | None:
        """The exit status once the process ended (None while it runs; -1 when it was not ours to wait for)."""
        if self.proc is not None:
            return self.proc.poll()
        return None if self.pid and processes.alive(self.pid) and processes.pid_of(self.name) else -1

    def ended(self, returncode: int, *, requested: bool) -> None:
        now = time.time()
        known = self.proc is not None  # an adopted process is not ours to wait for: its status is unknown
        status = describe_exit(returncode) if known else "exit status unknown (started by an earlier supervisor)"
        tail = [] if requested else log_tail(self.name)
        # A process that exits with a code usually said why in its last error line; a signal says it all.
        why = why_from_log(tail) if known and returncode > 0 else None
        reason = f"stopped on request ({status})" if requested else status + (f": {why}" if why else "")
        self.last_exit = {"at": now, "code": returncode if known else None, "reason": reason, "log": tail}
        processes.forget(self.name)
        ran = now - (self.since or now)
        self.proc, self.pid, self.since = None, None, None
        if requested:
            self.state = STOPPED
        elif self.last_exit["code"] is not None and not is_failure(returncode):
            self.state = EXITED
        else:
            pause = self.tracker.failed(now, ran)
            if pause is None:
                p = self.tracker.policy
                self.state = CRASH_LOOP
                self.last_exit["reason"] = (f"crash loop: {p.loop_exits} failures within {p.loop_window_s:g} s, "
                                            f"not restarted; last: {self.last_exit['reason']}")
            else:
                self.state, self.restart_at = BACKOFF, now + pause

    def view(self) -> dict:
        return {"name": self.name, "argv": self.planned.argv, "roles": self.planned.roles(), "state": self.state,
                "pid": self.pid, "since": self.since, "restarts": self.restarts, "lastExit": self.last_exit,
                "restartAt": self.restart_at}


class Supervisor:
    def __init__(self, plan: list[Planned]) -> None:
        self.policy = RestartPolicy.from_settings(settings())
        self.children: dict[str, Child] = {p.name: Child(p, self.policy) for p in plan}
        self.started = time.time()
        self._stop = asyncio.Event()
        self._changed = True

    # The loop ----------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        server = await control.serve(self.handle)
        for child in self.children.values():
            self._start_or_adopt(child)
        log.info("supervisor running", extra={"processes": list(self.children)})
        try:
            while not self._stop.is_set():
                try:
                    self._watch()
                    if self._changed:
                        self._changed = False
                        self.write_state()
                except Exception:  # noqa: BLE001  (the supervisor outlives its own bugs: log, go on)
                    log.exception("supervisor: watching the processes failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), POLL_S)
        finally:
            server.close()
            control.socket_path().unlink(missing_ok=True)
            self.write_state(stopped=True)
            log.info("supervisor stopped: the processes go on running")

    def _start_or_adopt(self, child: Child) -> None:
        pid = processes.pid_of(child.name)
        if pid:
            child.adopt(pid)
            log.info("process adopted", extra={"child": child.name, "pid": pid})
        else:
            child.launch()
        self._changed = True

    def _watch(self) -> None:
        now = time.time()
        for child in self.children.values():
            if child.lock.locked():
                continue  # a command is starting or stopping it
            if child.state == RUNNING:
                code = child.returncode()
                if code is None:
                    continue
                child.ended(code, requested=False)
                assert child.last_exit is not None  # ended() sets it
                self._changed = True
                level = logging.WARNING if child.state == BACKOFF else logging.ERROR
                log.log(level, "process ended", extra={"child": child.name, "state": child.state,
                                                       "reason": child.last_exit["reason"],
                                                       "restartInS": round((child.restart_at or now) - now, 2)})
            elif child.state == BACKOFF and now >= (child.restart_at or 0):
                child.restarts += 1
                child.launch()
                self._changed = True
                log.info("process restarted", extra={"child": child.name, "pid": child.pid,
                                                     "restarts": child.restarts})

    def write_state(self, *, stopped: bool = False) -> None:
        me = os.getpid()
        write_json(state_path(), {
            "supervisor": {"pid": None if stopped else me, "started": processes.start_time(me),
                           "since": self.started, "writtenAt": time.time()},
            "processes": [c.view() for c in self.children.values()],
        })

    # Commands ----------------------------------------------------------------
    async def handle(self, request: dict) -> dict:
        command, name = request.get("command"), request.get("name")
        try:
            if command == "reload":
                message = await self.reload()
                self.write_state()
                return {"ok": True, "message": message}
            if command not in ("start", "stop", "restart"):
                return {"ok": False, "error": f"command: {command!r} is not one of start, stop, restart, reload"}
            child = self.find(name)
            async with child.lock:
                if command in ("stop", "restart"):
                    message = await self.stop(child)
                if command in ("start", "restart"):
                    message = self.start(child)
            # Written before the answer: a `status` run right after the command sees its effect.
            self.write_state()
            return {"ok": True, "message": message}
        except LookupError as exc:
            return {"ok": False, "error": str(exc)}
        finally:
            self._changed = True

    def find(self, name: Any) -> Child:
        """The child named `name`, or the one running the role `name`."""
        if isinstance(name, str):
            if name in self.children:
                return self.children[name]
            for child in self.children.values():
                if name in child.planned.roles():
                    return child
        roles = sorted({r for c in self.children.values() for r in c.planned.roles()} - set(self.children))
        raise LookupError(f"name: {name!r} is not a supervised process ({', '.join(self.children)}) "
                          f"or role ({', '.join(roles)})")

    def start(self, child: Child) -> str:
        child.tracker.reset()
        if child.state == RUNNING:
            return f"{child.name} already runs (pid {child.pid})"
        child.launch()
        log.info("process started on request", extra={"child": child.name, "pid": child.pid})
        return f"started {child.name} (pid {child.pid})"

    async def stop(self, child: Child) -> str:
        if child.state != RUNNING:
            previous, child.state, child.restart_at = child.state, STOPPED, None
            return f"{child.name} was not running ({previous})"
        child.state = STOPPING
        self.write_state()
        pid = child.pid
        await asyncio.to_thread(processes.stop, child.name)
        code = child.returncode()
        child.ended(code if code is not None else -1, requested=True)
        log.info("process stopped on request", extra={"child": child.name, "pid": pid})
        return f"stopped {child.name} (pid {pid})"

    async def reload(self) -> str:
        """Read the plan again: add its new processes, start every one that is not running, and stop and
        forget those it no longer holds (an instance scaled away)."""
        plan = read_plan()
        started, removed = [], []
        for planned in plan:
            child = self.children.get(planned.name)
            if child is None:
                child = self.children[planned.name] = Child(planned, self.policy)
            async with child.lock:
                child.planned = planned
                if child.state != RUNNING:
                    child.tracker.reset()
                    self._start_or_adopt(child)
                    started.append(child.name)
        planned_names = {p.name for p in plan}
        for name in [n for n in self.children if n not in planned_names]:
            child = self.children[name]
            async with child.lock:
                await self.stop(child)
            del self.children[name]
            removed.append(name)
        parts = ([f"started {', '.join(started)}"] if started else []) + (
            [f"stopped and removed {', '.join(removed)}"] if removed else [])
        return "; ".join(parts) if parts else "every process runs"


async def supervise() -> None:
    """Run the supervisor of this checkout's plan until SIGTERM; only one per state folder."""
    lock = processes.lock_file(processes.run_dir() / "supervisor.lock")
    if lock is None:
        raise SystemExit(f"a supervisor already runs for {settings().state_dir} (pid {processes.pid_of(NAME)})")
    try:
        processes.write_pid_file(NAME, os.getpid())
        await Supervisor(read_plan()).run()
    finally:
        if processes.pid_of(NAME) == os.getpid():
            processes.forget(NAME)
        os.close(lock)
