"""A worker process's garbage collector follows BACKHAUL_GC_THRESHOLD (program.cli.tune_collector), in a
real `backhaul worker` process as in the function."""
from __future__ import annotations

import gc
import os
import subprocess
import sys

from program.cli import tune_collector


def test_tune_collector_sets_the_threshold_and_freezes_what_is_loaded():
    before = gc.get_threshold()
    try:
        tune_collector((12_345, 6, 7))
        assert gc.get_threshold() == (12_345, 6, 7)
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
        tune_collector(())
        assert gc.get_threshold() == (12_345, 6, 7) and gc.get_freeze_count() == 0, "empty: left as it is"
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_worker_command_applies_the_setting_before_its_roles_start():
    code = ("import gc, program.cli as c, program.roles as r\n"
            "r.run_roles = lambda roles, metrics_port: print(*gc.get_threshold()) or 0\n"
            "c._run_logged = lambda name, result: result\n"
            "c.cmd_worker(type('A', (), {'roles': 'delivery', 'metrics_port': 0})())\n")
    for raw, expected in (("", "700 10 10"), ("40000,20,30", "40000 20 30"), (None, "50000 50 100")):
        env = {k: v for k, v in os.environ.items() if k != "BACKHAUL_GC_THRESHOLD"}
        if raw is not None:
            env["BACKHAUL_GC_THRESHOLD"] = raw
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert out.stdout.split("\n")[-2:-1] == [expected], out.stderr[-2000:]
