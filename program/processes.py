"""Background processes started by `backhaul up`: pid files, logs, stop, status, ports.

A pid file holds the pid and the process's start time (from /proc), so a pid
left by a reboot or a kill -9 and since reused by another program is never
taken for ours, and never signalled.
"""
from __future__ import annotations

import fcntl
import os
import signal
import socket
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
    """Start, stop, reset or report Kafka and PostgreSQL with the deploy/local scripts."""
    order = ["kafka", "postgresql"] if action in ("start", "status") else ["postgresql", "kafka"]
    for name in order:
        result = subprocess.run(["bash", str(STACK_SCRIPTS[name]), action])
        if result.returncode not in (0, 3) or (action != "status" and result.returncode):
            raise SystemExit(f"{name} {action} failed (exit {result.returncode})")


def gateway_password(name: str) -> str:
    """Credentials of a gateway on the local stack's Kafka (`kafka.sh add-gateway`), made once and kept
    in .local/kafka/gateways/NAME.password (0600); granted again on every call, as the broker's data
    may have been reset since."""
    path = settings().state_dir / "kafka" / "gateways" / f"{name}.password"
    path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if path.exists():
        env["BACKHAUL_GATEWAY_PASSWORD"] = path.read_text().strip()
    result = subprocess.run(["bash", str(STACK_SCRIPTS["kafka"]), "add-gateway", name], env=env,
                            stdout=subprocess.PIPE, text=True)
    if result.returncode:
        raise SystemExit(f"could not create the Kafka credentials of gateway {name} (exit {result.returncode})")
    password = result.stdout.split()[1]
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)
    return password


def start_time(pid: int) -> str | None:
    """The kernel's start time of a process (clock ticks since boot), None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    return stat.rsplit(")", 1)[1].split()[19]


def pid_of(name: str) -> int | None:
    """The pid of our process `name` if it still runs; a stale pid file is removed."""
    path = run_dir() / f"{name}.pid"
    try:
        pid_text, _, started = path.read_text().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if not started.strip() or start_time(pid) != started.strip():
        path.unlink(missing_ok=True)
        return None
    return pid


def spawn(name: str, args: list[str], env: dict[str, str] | None = None) -> int:
    """Start `backhaul <args>` in the background unless `name` already runs; returns its pid."""
    pid = pid_of(name)
    if pid:
        return pid
    return launch(name, args, env).pid


def launch(name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `backhaul <args>` in a session of its own, its output appended to logs/NAME.log,
    and record it in run/NAME.pid."""
    with open(log_dir() / f"{name}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "program.cli", *args], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=PROJECT_ROOT,
                                env={**os.environ, **(env or {})})
    write_pid_file(name, proc.pid)
    return proc


def write_pid_file(name: str, pid: int) -> None:
    """Record `pid` (with its start time) as the process `name`."""
    (run_dir() / f"{name}.pid").write_text(f"{pid} {start_time(pid)}")


def forget(name: str) -> None:
    """Remove the pid file of `name` (its process has ended)."""
    (run_dir() / f"{name}.pid").unlink(missing_ok=True)


def started_at(pid: int) -> float | None:
    """When a process started (epoch seconds), None if it does not exist."""
    ticks = start_time(pid)
    try:
        booted = time.time() - float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return None if ticks is None else booted + int(ticks) / os.sysconf("SC_CLK_TCK")


def lock_file(path: Path) -> int | None:
    """An open descriptor of `path` holding its exclusive lock (flock), or None when another
    process holds it. The kernel releases the lock when the process ends, however it ends."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # The previous holder may have removed the file between our open and our lock: lock the new one.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


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
        if not alive(pid):
            break
        time.sleep(0.1)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    (run_dir() / f"{name}.pid").unlink(missing_ok=True)
    return True


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def running() -> dict[str, int]:
    """Every process started by `backhaul up` that still runs."""
    out = {}
    for path in sorted(run_dir().glob("*.pid")):
        pid = pid_of(path.stem)
        if pid:
            out[path.stem] = pid
    return out


# ports ------------------------------------------------------------------------
def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) != 0


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on a TCP port, when this user may see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def describe_pid(pid: int) -> str:
    """'pid N (command line)', shortened, for messages."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    return f"pid {pid} ({cmd[:120] or 'unknown command'})"


def check_ports_free(needed: dict[int, tuple[str, str]]) -> list[str]:
    """For each port (-> (what, variable)) that something listens on, a message naming the
    port, the process that holds it where it can be seen, and the variable that moves it."""
    problems = []
    for port, (what, variable) in sorted(needed.items()):
        if port_free(port):
            continue
        pid = listening_pid(port)
        holder = describe_pid(pid) if pid else "another process"
        problems.append(f"{what} needs 127.0.0.1:{port}, but it is taken by {holder}; stop that process, "
                        f"or choose another port with {variable}=<port>")
    return problems
