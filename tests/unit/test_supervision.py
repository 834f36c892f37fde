"""The pieces of supervision that need no broker: the restart rule, exit reasons, instance slots,
the control socket on a long path, the status table."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest

from backhaul import settings as settings_module
from program.restart_policy import RestartPolicy, RestartTracker, describe_exit, is_failure


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    """This process's settings pointed at a private state folder whose path has spaces, non-ASCII
    characters and more bytes than a Unix socket's path may hold."""
    path = tmp_path / "mon dossier é" / ("a long folder name " * 4).strip()
    path.mkdir(parents=True)
    monkeypatch.setenv("BACKHAUL_STATE_DIR", str(path))
    monkeypatch.delenv("BACKHAUL_INSTANCE_ID", raising=False)
    settings_module.settings.cache_clear()
    yield path
    settings_module.settings.cache_clear()


# The rule ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code, failure, text", [
    (0, False, "exited with code 0"),
    (1, True, "exited with code 1"),
    (2, True, "exited with code 2"),
    (-signal.SIGKILL, True, "killed by SIGKILL"),
    (-signal.SIGSEGV, True, "killed by SIGSEGV"),
    (-signal.SIGABRT, True, "killed by SIGABRT"),
    (-signal.SIGTERM, False, "killed by SIGTERM"),
    (-signal.SIGINT, False, "killed by SIGINT"),
    (-signal.SIGHUP, False, "killed by SIGHUP"),
    (-signal.SIGPIPE, False, "killed by SIGPIPE"),
])
def test_failures_are_systemds_on_failure(code, failure, text):
    assert is_failure(code) is failure
    assert describe_exit(code) == text


def test_the_pause_doubles_up_to_its_cap_and_a_crash_loop_stops_restarts():
    tracker = RestartTracker(RestartPolicy(first_s=0.5, max_s=3.0, stable_s=30, loop_exits=5, loop_window_s=60))
    pauses = [tracker.failed(at=t, ran_s=1.0) for t in (0, 2, 4, 8)]
    assert pauses == [0.5, 1.0, 2.0, 3.0]
    assert tracker.failed(at=13, ran_s=1.0) is None, "the 5th failure within 60 s is a crash loop"


def test_failures_spread_over_more_than_the_window_are_no_crash_loop():
    tracker = RestartTracker(RestartPolicy(first_s=0.5, max_s=30, stable_s=1000, loop_exits=3, loop_window_s=60))
    assert [tracker.failed(at=t, ran_s=20) for t in (0, 40, 80, 120)] == [0.5, 1.0, 2.0, 4.0]


def test_a_process_that_ran_long_enough_starts_over_from_the_first_pause():
    tracker = RestartTracker(RestartPolicy(first_s=0.5, max_s=30, stable_s=30, loop_exits=99, loop_window_s=60))
    assert [tracker.failed(at=t, ran_s=2) for t in (0, 1, 2)] == [0.5, 1.0, 2.0]
    assert tracker.failed(at=100, ran_s=45) == 0.5
    tracker.failed(at=101, ran_s=1)
    tracker.reset()
    assert tracker.failed(at=102, ran_s=1) == 0.5


def test_the_reason_comes_from_the_last_error_line_of_the_log():
    from program.supervisor import why_from_log

    json_lines = [json.dumps({"level": "info", "msg": "worker running"}),
                  json.dumps({"level": "critical", "msg": "worker stopped by an unexpected error",
                              "exc": "Traceback (most recent call last):\n  File x\nOSError: [Errno 111] refused"})]
    assert why_from_log(json_lines) == "worker stopped by an unexpected error (OSError: [Errno 111] refused)"
    plain = ["Traceback (most recent call last):", '  File "x", line 1', "ValueError: BACKHAUL_X='a' is not an integer"]
    assert why_from_log(plain) == "ValueError: BACKHAUL_X='a' is not an integer"
    assert why_from_log([json.dumps({"level": "info", "msg": "fine"})]) is None


# Instance slots --------------------------------------------------------------------------------------
def test_workers_of_the_same_roles_take_distinct_slots_and_give_them_back(state_dir):
    from program.instances import registered, running_instances

    with registered(["store", "relay"], 9104) as first, registered(["relay", "store"], 9999) as second:
        assert first.id.endswith("-relay_store-0") and second.id.endswith("-relay_store-1")
        listed = {i.id: i for i in running_instances()}
        assert set(listed) == {first.id, second.id}
        assert listed[first.id].pid == os.getpid() and listed[first.id].metrics_port == 9104
    assert running_instances() == []
    with registered(["relay", "store"], 9104) as again:
        assert again.id == first.id, "a restarted worker finds its slot free again: the same id"


def test_an_explicit_instance_id_is_checked_and_never_shared(state_dir, monkeypatch):
    from program.instances import registered

    monkeypatch.setenv("BACKHAUL_INSTANCE_ID", "edge 1/ingest")
    settings_module.settings.cache_clear()
    with pytest.raises(SystemExit, match=r"BACKHAUL_INSTANCE_ID='edge 1/ingest': use 1 to 249 of the characters"):
        with registered(["ingest"], 9101):
            pass
    monkeypatch.setenv("BACKHAUL_INSTANCE_ID", "edge1.ingest")
    settings_module.settings.cache_clear()
    with registered(["ingest"], 9101) as me:
        assert me.id == "edge1.ingest"
        with pytest.raises(SystemExit, match=rf"BACKHAUL_INSTANCE_ID=edge1.ingest is already taken on this "
                                             rf"machine by pid {os.getpid()} \(roles ingest\)"):
            with registered(["ingest"], 9101):
                pass


def test_the_file_of_a_process_killed_9_is_not_listed_and_its_slot_is_free(state_dir):
    from program.instances import registered, running_instances

    code = ("import os, signal\nfrom program.instances import registered\n"
            "with registered(['router'], 9102) as me:\n    print(me.id, flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "BACKHAUL_STATE_DIR": str(state_dir)})
    assert child.returncode == -signal.SIGKILL
    left = child.stdout.strip()
    assert (state_dir / "run" / "workers" / f"{left}.json").exists(), "kill -9 left the file behind"
    assert running_instances() == []
    with registered(["router"], 9102) as me:
        assert me.id == left


# The control socket ------------------------------------------------------------------------------------
async def test_the_control_socket_works_from_a_path_longer_than_a_socket_address(state_dir):
    from program import control

    assert len(os.fsencode(control.socket_path())) > control.SUN_PATH_MAX

    async def handle(request: dict) -> dict:
        return {"ok": True, "message": f"{request['command']} {request['name']}"}

    server = await control.serve(handle)
    try:
        assert oct(control.socket_path().stat().st_mode & 0o777) == "0o600"
        reply = await asyncio.to_thread(control.request, "stop", "délivery")
        assert reply == {"ok": True, "message": "stop délivery"}
    finally:
        server.close()
        await server.wait_closed()
    control.socket_path().unlink()
    with pytest.raises(control.NoSupervisor, match="no supervisor answers"):
        control.request("stop", "delivery")


# The status table --------------------------------------------------------------------------------------
def test_the_status_table_has_every_column_and_shows_a_crash_loops_log():
    from program.status_report import Row, duration, table

    assert [duration(s) for s in (5, 65, 3725, 90000)] == ["5s", "1m05s", "1h02m", "1d01h"]
    rows = [Row("supervisor", "running", 10, 1000.0),
            Row("delivery", "running", 11, 1900.0, 2, "vm-delivery-0", "killed by SIGKILL", 1890.0),
            Row("store", "crash-loop", None, None, 4, None, "crash loop: ...", 1990.0, ["line 1", "line 2"])]
    text = table(rows, [Row("worker router", "running", 12, 1950.0, None, "vm-router-0")], now=2000.0)
    lines = text.splitlines()
    assert lines[0].split() == ["PROCESS", "STATE", "PID", "UPTIME", "RESTARTS", "INSTANCE", "LAST", "EXIT"]
    assert lines[2].split()[:6] == ["delivery", "running", "11", "1m40s", "2", "vm-delivery-0"]
    assert lines[2].endswith("killed by SIGKILL (1m50s ago)")
    assert lines[4].split()[:6] == ["worker", "router", "running", "12", "50s", "-"]
    assert "-- last lines of store's log:" in text and "   line 2" in text
    assert "1 worker(s) started by hand" in text


def test_an_exit_reason_with_line_breaks_stays_on_its_process_line():
    from program.status_report import Row, table

    rows = [Row("supervisor", "running", 10, 1000.0),
            Row("ingest", "running", 11, 1900.0, 1, None, "exited with code 1: KafkaConnectionError: no\n"
                                                           "producer: bootstrap failed\r\n  at start", 1990.0),
            Row("router", "running", 12, 1900.0)]
    lines = table(rows, [], now=2000.0).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["supervisor", "ingest", "router"]
    assert lines[2].endswith("exited with code 1: KafkaConnectionError: no producer: bootstrap failed at start "
                             "(10s ago)")
