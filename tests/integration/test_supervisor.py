"""`backhaul supervise` as `up` runs it, in a state folder of its own (a path with spaces, non-ASCII
characters and more bytes than a socket address holds): restarts after kill -9, a crash loop left
stopped with its reason, start/stop/restart through the CLI, status, a worker started by hand, and
`down` after the supervisor."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from backhaul import settings as settings_module
from program import processes
from program.supervised import WorkerProcess, free_port
from tests.cli import Cli
from tests.conftest import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

STEP_S = 30


@pytest.fixture
def kafka_password() -> str:
    """The password of Backhaul's Kafka user on the test run's stack, read before the state folder moves."""
    return settings_module.Settings.from_env().kafka_password or ""


@pytest.fixture
def state_dir(tmp_path, monkeypatch, kafka_password):
    path = tmp_path / "état du superviseur" / ("a long folder name " * 4).strip()
    path.mkdir(parents=True)
    monkeypatch.setenv("BACKHAUL_STATE_DIR", str(path))
    settings_module.settings.cache_clear()
    yield path
    settings_module.settings.cache_clear()


@pytest.fixture
def supervisor(state_dir):
    from program.supervisor import Planned, write_plan

    env = {**os.environ, "BACKHAUL_STATE_DIR": str(state_dir), "BACKHAUL_RESTART_FIRST_S": "0.2",
           "BACKHAUL_CRASH_LOOP_EXITS": "3", "BACKHAUL_CRASH_LOOP_WINDOW_S": "60"}
    port = free_port()
    write_plan([Planned("receiver", ["demo-receiver", "--port", str(port)]),
                # Fails at once, every time: a crash loop.
                Planned("broken", ["worker", "--roles", "no-such-role"])])
    log = open(state_dir / "supervisor.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "program.cli", "supervise"], env=env, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        yield proc, Cli(env, timeout_s=STEP_S * 2), port
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(STEP_S)
        Cli(env, timeout_s=STEP_S * 2)("down", "--keep-stack", check=False)
        log.close()


def field(cli: Cli, name: str, key: str):
    """One column of `backhaul status` (read in this process: the same code, without starting Python)."""
    from program.status_report import collect

    rows, _ = collect([])
    return next((getattr(r, key) for r in rows if r.name == name), None)


async def test_restarts_a_killed_process_stops_a_crash_loop_and_obeys_commands(supervisor, state_dir):
    proc, cli, port = supervisor
    await wait_until(lambda: field(cli, "receiver", "state") == "running" and not processes.port_free(port), STEP_S,
                     "the receiver running")
    first = field(cli, "receiver", "pid")

    # A crash loop: three failures in a row, then left stopped with the reason and its log.
    await wait_until(lambda: field(cli, "broken", "state") == "crash-loop", STEP_S, "the crash loop detected")
    broken = cli.status()["broken"]  # as the command prints it
    assert broken["restarts"] == 2 and broken["pid"] is None
    assert broken["last_exit"].startswith("crash loop: 3 failures within 60 s, not restarted; last: exited with code 1")
    assert "unknown role(s) ['no-such-role']" in broken["last_exit"]
    assert any("no-such-role" in line for line in broken["log"])

    # kill -9: started again, counted, and the reason recorded.
    os.kill(first, signal.SIGKILL)
    await wait_until(lambda: field(cli, "receiver", "pid") not in (None, first), STEP_S, "the receiver restarted")
    receiver = cli.status()["receiver"]
    assert (receiver["state"], receiver["restarts"]) == ("running", 1)
    assert receiver["last_exit"] == "killed by SIGKILL"
    await wait_until(lambda: not processes.port_free(port), STEP_S, "the restarted receiver listening")

    table = cli("status").stdout
    assert table.splitlines()[0].split() == ["PROCESS", "STATE", "PID", "UPTIME", "RESTARTS", "INSTANCE", "LAST",
                                             "EXIT"]
    assert "-- last lines of broken's log:" in table

    # stop: it stays stopped (a stop is not a failure to recover from).
    assert cli("stop", "receiver").stdout.startswith("stopped receiver")
    assert processes.port_free(port)
    time.sleep(1.0)  # five restart pauses: nothing may start it again
    assert (field(cli, "receiver", "state"), field(cli, "receiver", "restarts")) == ("stopped", 1)
    assert field(cli, "receiver", "last_exit") == "stopped on request (exited with code 0)"

    assert cli("start", "receiver").stdout.startswith("started receiver")
    await wait_until(lambda: not processes.port_free(port), STEP_S, "the receiver listening again")
    before = field(cli, "receiver", "pid")
    assert cli("restart", "receiver").stdout.startswith("started receiver")
    assert field(cli, "receiver", "pid") not in (None, before)

    unknown = cli("stop", "nothing", check=False)
    assert unknown.returncode == 1
    assert "name: 'nothing' is not a supervised process (receiver, broken)" in unknown.stderr

    # The supervisor ends on SIGTERM and leaves the processes running; `down` then stops them.
    pid = field(cli, "receiver", "pid")
    proc.terminate()
    assert proc.wait(STEP_S) == 0
    assert processes.alive(pid)
    assert "backhaul stop: no supervisor runs" in cli("stop", "receiver", check=False).stderr
    assert "stopped receiver" in cli("down", "--keep-stack").stdout
    assert not processes.alive(pid)


async def test_a_worker_started_by_hand_is_listed_while_it_runs(isolated, kafka_password, state_dir, tmp_path):
    # The state folder is the test's own: the Kafka password comes with the environment, as on a server.
    env = isolated.subprocess_env(BACKHAUL_STATE_DIR=str(state_dir), BACKHAUL_KAFKA_PASSWORD=kafka_password)
    cli = Cli(env, timeout_s=STEP_S * 2)
    worker = WorkerProcess("router", env, tmp_path / "router.log").start()
    try:
        await worker.wait_ready()
        [listed] = json.loads(cli("status", "--json").stdout)["byHand"]
        assert (listed["name"], listed["state"], listed["pid"]) == ("worker router", "running", worker.proc.pid)
        assert listed["instance"].endswith("-router-0")
        assert "1 worker(s) started by hand" in cli("status").stdout
        worker.kill9()
        assert json.loads(cli("status", "--json").stdout)["byHand"] == [], "a dead worker's file is not listed"
    finally:
        worker.stop()



async def test_a_reload_starts_new_processes_and_stops_those_no_longer_planned(supervisor, state_dir):
    """What `backhaul scale` relies on: the plan rewritten, then `reload`."""
    from program import control
    from program.supervisor import Planned, read_plan, write_plan

    proc, cli, port = supervisor
    await wait_until(lambda: field(cli, "receiver", "state") == "running", STEP_S, "the receiver running")
    second = free_port()
    plan = [p for p in read_plan() if p.name != "broken"]
    write_plan([*plan, Planned("receiver-2", ["demo-receiver", "--port", str(second)])])
    reply = control.request("reload")
    assert reply["ok"] and "started receiver-2" in reply["message"], reply
    assert "stopped and removed broken" in reply["message"]
    await wait_until(lambda: not processes.port_free(second), STEP_S, "the second receiver listening")
    assert set(cli.status()) == {"supervisor", "receiver", "receiver-2"}
    first = field(cli, "receiver", "pid")

    write_plan(plan)
    reply = control.request("reload")
    assert reply == {"ok": True, "message": "stopped and removed receiver-2"}
    assert processes.port_free(second)
    assert set(cli.status()) == {"supervisor", "receiver"}
    assert field(cli, "receiver", "pid") == first  # the others untouched
