"""The README's commands work from wherever a user clones.

A copy of this checkout goes into a private folder (mode 700, as a home
directory is) whose path holds a space and a non-ASCII character, with ports
of its own so it runs beside the stack of the test run. There `./scripts/up`
brings up the whole demo under its supervisor, a callback reaches the demo
receiver, `backhaul status` shows every process, a worker killed with -9 is
started again, `backhaul stop` / `start` act on one role, and `backhaul down`
leaves nothing running or listening. The stack scripts then
recover from a kill -9 of Kafka and PostgreSQL and from stale pid files, refuse
a port that another program holds (naming it), and run for a user without root.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from program.supervised import free_port, free_port_block

ROOT = Path(__file__).resolve().parents[2]
# Bounds for each step: the first bootstrap installs .venv (about a minute from pip's cache).
UP_TIMEOUT_S = 600
STEP_TIMEOUT_S = 120

pytestmark = pytest.mark.timeout(1200)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _copy_checkout(dest: Path) -> None:
    """Copy the files git tracks (and new files it does not ignore), as a clone of this tree would hold."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = Path(os.fsdecode(raw))
        src = ROOT / rel
        if not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)


class Checkout:
    """A private copy of the project with its own ports."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ports = {
            "BACKHAUL_KAFKA_PORT": free_port(),
            "BACKHAUL_KAFKA_CONTROLLER_PORT": free_port(),
            "BACKHAUL_KAFKA_GATEWAY_PORT": free_port(),
            "BACKHAUL_PG_PORT": free_port(),
            "BACKHAUL_API_PORT": free_port(),
            "BACKHAUL_DEMO_RECEIVER_PORT": free_port(),
            "BACKHAUL_METRICS_PORT_BASE": free_port_block(range(9)),
        }
        # Only what a user's shell would have: none of this test run's BACKHAUL_* settings.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BACKHAUL_")}
        self.env.update({k: str(v) for k, v in self.ports.items()})

    def run(self, *argv: str, timeout: float = STEP_TIMEOUT_S, check: bool = True,
            user: str | None = None) -> subprocess.CompletedProcess:
        cmd = list(argv) if user is None else ["runuser", "-u", user, "--", *argv]
        result = subprocess.run(cmd, cwd=self.path, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} exited with {result.returncode}:\n{result.stdout[-4000:]}\n"
                                 f"{result.stderr[-4000:]}")
        return result

    def status(self) -> dict[str, dict]:
        """`backhaul status --json`: each process by name."""
        return {p["name"]: p for p in json.loads(self.run(".venv/bin/backhaul", "status", "--json").stdout)["processes"]}

    def pg_data(self) -> Path:
        return Path(self.run("deploy/local/postgres.sh", "where").stdout.strip())

    def listening_ports(self) -> list[int]:
        ports = list(self.ports.values())[:-1]
        base = self.ports["BACKHAUL_METRICS_PORT_BASE"]
        ports += [base + i for i in range(1, 9)]
        return [p for p in ports if not _port_free(p)]

    def processes(self) -> list[str]:
        """Every process that runs from this checkout or from its PostgreSQL data directory."""
        marks = [str(self.path), str(self.pg_data())]
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                cwd = os.readlink(proc / "cwd")
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and any(m in cmdline or cwd.startswith(m) for m in marks):
                found.append(f"{proc.name}: {cmdline[:200]}")
        return found


@pytest.fixture(scope="module")
def checkout():
    base = Path(tempfile.mkdtemp(prefix="bh-private-"))
    os.chmod(base, 0o700)
    path = base / "my checkouts é" / "back haul"
    path.mkdir(parents=True)
    _copy_checkout(path)
    co = Checkout(path)
    try:
        yield co
    finally:
        if (path / ".venv/bin/backhaul").exists():
            co.run(".venv/bin/backhaul", "down", "--purge", check=False, timeout=STEP_TIMEOUT_S)
        else:
            co.run("deploy/local/postgres.sh", "reset", check=False)
            co.run("deploy/local/kafka.sh", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


def _receiver_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as resp:
        return json.loads(resp.read())


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _diagnosis(co: Checkout) -> str:
    """What the demo's processes said: `backhaul status` and the end of each log."""
    parts = [co.run(".venv/bin/backhaul", "status", check=False).stdout]
    for log in sorted((co.path / ".local/logs").glob("*.log")):
        parts.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    return "\n".join(parts)


def _wait_for_callbacks(co: Checkout, timeout: float) -> dict:
    port = co.ports["BACKHAUL_DEMO_RECEIVER_PORT"]
    deadline = time.monotonic() + timeout
    stats: dict = {}
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as resp:
                stats = json.loads(resp.read())
            if stats.get("byName", {}).get("data", 0) > 0:
                return stats
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no DATA callback reached the demo receiver within {timeout} s (last stats {stats})\n"
                         f"{_diagnosis(co)}")


def test_up_and_down_from_a_private_folder_with_spaces_and_non_ascii(checkout: Checkout) -> None:
    assert " " in str(checkout.path) and not str(checkout.path).isascii()
    assert os.stat(checkout.path.parent.parent).st_mode & 0o777 == 0o700

    up = checkout.run("./scripts/up", "--rate", "5", timeout=UP_TIMEOUT_S)
    assert "Backhaul is up." in up.stdout
    stats = _wait_for_callbacks(checkout, 90)
    assert stats["byName"]["data"] > 0

    status = checkout.run(".venv/bin/backhaul", "status").stdout
    lines = status.splitlines()
    assert lines[0].split() == ["PROCESS", "STATE", "PID", "UPTIME", "RESTARTS", "INSTANCE", "LAST", "EXIT"]
    table = {line.split()[0]: line.split() for line in lines[1:10]}
    assert set(table) == {"supervisor", "ingest", "router", "delivery", "store", "downlink", "api", "receiver",
                          "simulate"}, status
    assert all(row[1] == "running" and row[2].isdigit() for row in table.values()), status
    assert table["delivery"][5].endswith("-delivery-0") and table["store"][5].endswith("-relay_store-0")
    assert "postgresql: running" in status and "kafka: running" in status

    # kill -9 a worker: the supervisor starts it again, says why, and callbacks go on.
    killed = checkout.status()["delivery"]["pid"]
    os.kill(killed, signal.SIGKILL)
    restarted = _wait_for(lambda: (p := checkout.status()["delivery"])["pid"] not in (None, killed) and p, 30,
                          "the delivery worker restarted")
    assert (restarted["state"], restarted["restarts"], restarted["last_exit"]) == ("running", 1, "killed by SIGKILL")
    receiver = checkout.ports["BACKHAUL_DEMO_RECEIVER_PORT"]
    seen = _receiver_stats(receiver)["byName"]["data"]
    _wait_for(lambda: _receiver_stats(receiver)["byName"]["data"] > seen + 5, 60, "callbacks after the restart")

    # One role stopped and started by hand, through the supervisor.
    assert checkout.run(".venv/bin/backhaul", "stop", "delivery").stdout.startswith("stopped delivery")
    assert checkout.status()["delivery"]["state"] == "stopped"
    assert checkout.run(".venv/bin/backhaul", "start", "delivery").stdout.startswith("started delivery")
    assert checkout.status()["delivery"]["state"] == "running"

    checkout.run(".venv/bin/backhaul", "down")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (checkout.processes() or checkout.listening_ports()):
        time.sleep(0.2)
    assert checkout.processes() == []
    assert checkout.listening_ports() == []
    assert "stopped" in checkout.run(".venv/bin/backhaul", "status").stdout


def _postmaster_pid(data: Path) -> int:
    return int((data / "postmaster.pid").read_text().splitlines()[0])


def test_stack_recovers_from_kill_9_and_stale_pid_files(checkout: Checkout) -> None:
    checkout.run("deploy/local/kafka.sh", "start", timeout=UP_TIMEOUT_S)
    checkout.run("deploy/local/postgres.sh", "start")
    data = checkout.pg_data()
    pg_port = checkout.ports["BACKHAUL_PG_PORT"]
    # A backend that outlives its postmaster holds the shared memory a new postmaster needs.
    backend = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "backhaul", "-d", "backhaul",
                                "-c", "SELECT pg_sleep(60)"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        time.sleep(1)
        kafka_pidfile = checkout.path / ".local/kafka/kafka.pid"
        os.kill(_postmaster_pid(data), signal.SIGKILL)
        os.kill(int(kafka_pidfile.read_text().split()[0]), signal.SIGKILL)
        time.sleep(1)
        # As after a reboot: the pid files name a live process that is not ours.
        kafka_pidfile.write_text(f"{bystander.pid}\n")
        run_dir = checkout.path / ".local/run"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "ingest.pid").write_text(f"{bystander.pid} 1")

        checkout.run("deploy/local/kafka.sh", "start", timeout=STEP_TIMEOUT_S)
        checkout.run("deploy/local/postgres.sh", "start")
        assert "postgresql: running" in checkout.run("deploy/local/postgres.sh", "status").stdout
        assert "kafka: running" in checkout.run("deploy/local/kafka.sh", "status").stdout
        psql = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "backhaul", "-d", "backhaul",
                               "-tAc", "SELECT 1"], capture_output=True, text=True, timeout=30)
        assert psql.stdout.strip() == "1", psql.stderr
        assert checkout.status()["ingest"]["state"] == "stopped"
        checkout.run(".venv/bin/backhaul", "down")
        assert bystander.poll() is None, "a stale pid file made the scripts signal a process that is not theirs"
        assert checkout.processes() == []
    finally:
        bystander.kill()
        backend.kill()


def test_a_taken_port_is_named_with_its_holder_and_variable(checkout: Checkout) -> None:
    taken = free_port()
    holder = subprocess.Popen(["python3", "-c", "import socket, time\n"
                               "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                               "s.bind(('127.0.0.1', %d)); s.listen(); time.sleep(120)" % taken])
    try:
        deadline = time.monotonic() + 10
        while _port_free(taken) and time.monotonic() < deadline:
            time.sleep(0.1)
        for script, variable in (("postgres.sh", "BACKHAUL_PG_PORT"), ("kafka.sh", "BACKHAUL_KAFKA_PORT")):
            checkout.env[variable] = str(taken)
            result = checkout.run(f"deploy/local/{script}", "start", check=False)
            checkout.env[variable] = str(checkout.ports[variable])
            assert result.returncode != 0
            assert f"127.0.0.1:{taken}" in result.stderr
            assert f"pid {holder.pid}" in result.stderr and variable in result.stderr, result.stderr
        checkout.env["BACKHAUL_DEMO_RECEIVER_PORT"] = str(taken)
        result = checkout.run(".venv/bin/backhaul", "up", "--no-simulate", check=False)
        assert result.returncode == 1
        assert f"pid {holder.pid}" in result.stderr and "BACKHAUL_DEMO_RECEIVER_PORT" in result.stderr, result.stderr
        assert holder.poll() is None
        assert checkout.processes() == [], "nothing starts when a port is taken"
    finally:
        checkout.env["BACKHAUL_DEMO_RECEIVER_PORT"] = str(checkout.ports["BACKHAUL_DEMO_RECEIVER_PORT"])
        holder.kill()


def test_a_port_taken_after_the_check_stops_kafka_at_once_naming_it(checkout: Checkout) -> None:
    # A socket bound without listening, as a client's ephemeral port is: the check before the launch cannot
    # see it, the JVM's bind fails, and kafka.sh says so within seconds instead of waiting 180 s.
    taken = free_port()
    holder = subprocess.Popen(["python3", "-c", "import socket, time\n"
                               "s = socket.socket(); s.bind(('127.0.0.1', %d)); time.sleep(120)" % taken])
    try:
        checkout.env["BACKHAUL_KAFKA_CONTROLLER_PORT"] = str(taken)
        started = time.monotonic()
        result = checkout.run("deploy/local/kafka.sh", "start", check=False)
        assert result.returncode == 1
        assert f"failed to bind to 127.0.0.1:{taken}: Address already in use" in result.stderr, result.stderr
        assert time.monotonic() - started < 90
        assert checkout.processes() == [], "the node that could not bind is not left running"
    finally:
        checkout.env["BACKHAUL_KAFKA_CONTROLLER_PORT"] = str(checkout.ports["BACKHAUL_KAFKA_CONTROLLER_PORT"])
        holder.kill()


USER = "bh-firstrun"


@pytest.fixture
def unprivileged_user():
    if os.getuid() != 0:
        yield pwd.getpwuid(os.getuid()).pw_name
        return
    subprocess.run(["userdel", "-r", USER], capture_output=True)
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
    try:
        yield USER
    finally:
        subprocess.run(["pkill", "-9", "-u", USER], capture_output=True)
        time.sleep(0.5)
        subprocess.run(["userdel", "-r", USER], capture_output=True)


def test_stack_runs_for_a_user_without_root(checkout: Checkout, unprivileged_user: str) -> None:
    home = Path(pwd.getpwnam(unprivileged_user).pw_dir)
    os.chmod(home, 0o700)
    path = home / "src é" / "back haul"
    path.mkdir(parents=True)
    _copy_checkout(path)
    # The broker's jars, as the first `kafka.sh start` resolves them from Maven Central.
    if not (checkout.path / ".local/kafka/libs").is_dir():
        checkout.run("deploy/local/kafka.sh", "start", timeout=UP_TIMEOUT_S)
        checkout.run("deploy/local/kafka.sh", "stop")
    shutil.copytree(checkout.path / ".local/kafka/libs", path / ".local/kafka/libs")
    subprocess.run(["chown", "-R", f"{unprivileged_user}:", str(home)], check=True)
    user = Checkout(path)
    user.ports = {**checkout.ports}
    user.env = {**checkout.env, "HOME": str(home)}
    try:
        user.run("deploy/local/postgres.sh", "start", user=unprivileged_user)
        user.run("deploy/local/kafka.sh", "start", user=unprivileged_user, timeout=STEP_TIMEOUT_S)
        data = Path(user.run("deploy/local/postgres.sh", "where", user=unprivileged_user).stdout.strip())
        assert data == path / ".local/pg"
        assert data.stat().st_uid == pwd.getpwnam(unprivileged_user).pw_uid
        psql = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(user.ports["BACKHAUL_PG_PORT"]), "-U", "backhaul",
                               "-d", "backhaul", "-tAc", "SELECT current_database()"],
                              capture_output=True, text=True, timeout=30)
        assert psql.stdout.strip() == "backhaul", psql.stderr
        assert not _port_free(user.ports["BACKHAUL_KAFKA_PORT"])
    finally:
        user.run("deploy/local/kafka.sh", "stop", user=unprivileged_user, check=False)
        user.run("deploy/local/postgres.sh", "reset", user=unprivileged_user, check=False)
    assert user.listening_ports() == []
