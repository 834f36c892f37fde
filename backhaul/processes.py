"""Background processes started by `backhaul up`: pid files, logs, stop, status."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backhaul.settings import PROJECT_ROOT, settings

STACK_SCRIPTS = {"kafka": PROJECT_ROOT / "deploy/local/kafka.sh",
                 "postgresql": PROJECT_ROOT / "deploy/local/postgres.sh"}


def run_dir() -> Path:
    d = settings().state_dir / "run"
    d.mkdir(parents=True, exist_ok=True)
    return d


def log_dir() -> Path:
    d = settings().state_dir / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def stack(action: str) -> None:
    """Start, stop or report Kafka and PostgreSQL with the deploy/local scripts."""
    order = ["kafka", "postgresql"] if action != "stop" else ["postgresql", "kafka"]
    for name in order:
        result = subprocess.run(["bash", str(STACK_SCRIPTS[name]), action])
        if result.returncode not in (0, 3) or (action == "start" and result.returncode):
            raise SystemExit(f"{name} {action} failed (exit {result.returncode})")


def pid_of(name: str) -> int | None:
    path = run_dir() / f"{name}.pid"
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        path.unlink(missing_ok=True)
        return None
    return pid


def spawn(name: str, args: list[str], env: dict[str, str] | None = None) -> int:
    """Start `backhaul <args>` in the background unless `name` already runs; returns its pid."""
    pid = pid_of(name)
    if pid:
        return pid
    log = open(log_dir() / f"{name}.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "backhaul.cli", *args], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=PROJECT_ROOT,
                            env={**os.environ, **(env or {})})
    (run_dir() / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def stop(name: str, timeout: float = 20.0) -> bool:
    """SIGTERM the process group, SIGKILL after `timeout`; True if something was stopped."""
    pid = pid_of(name)
    if not pid:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    (run_dir() / f"{name}.pid").unlink(missing_ok=True)
    return True


def running() -> dict[str, int]:
    """Every process started by `backhaul up` that still runs."""
    out = {}
    for path in sorted(run_dir().glob("*.pid")):
        pid = pid_of(path.stem)
        if pid:
            out[path.stem] = pid
    return out
