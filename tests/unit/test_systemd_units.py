"""The systemd units in deploy/systemd: one per process, each with its restart policy, crash-loop
limit, resource limits and confinement, and valid for `systemd-analyze verify`."""
from __future__ import annotations

import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from backhaul.settings import PROJECT_ROOT
from program.cli import DEMO_PROCESSES

UNITS = PROJECT_ROOT / "deploy" / "systemd"
INSTALLED_AT = "/opt/backhaul"
WORKERS = {name: argv for name, argv in DEMO_PROCESSES if name not in ("receiver",)}


def keys(path: Path) -> dict[str, list[str]]:
    """Every key of a unit file with its values (a key may repeat)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_each_process_has_a_unit_with_restart_policy_limits_and_confinement(name):
    unit = keys(UNITS / f"backhaul-{name}.service")
    assert unit["ExecStart"] == [f"{INSTALLED_AT}/.venv/bin/backhaul {' '.join(WORKERS[name])}"]
    assert unit["Restart"] == ["on-failure"] and unit["RestartSec"] == ["1s"]
    assert unit["StartLimitIntervalSec"] == ["60"] and unit["StartLimitBurst"] == ["5"]
    for limit in ("MemoryMax", "CPUQuota", "TasksMax", "LimitNOFILE"):
        assert limit in unit, limit
    assert unit["NoNewPrivileges"] == ["yes"] and unit["User"] == ["backhaul"]
    assert unit["EnvironmentFile"] == ["/etc/backhaul/backhaul.env"]
    assert unit["WantedBy"] == ["backhaul.target"]
    assert f"backhaul-{name}.service" in " ".join(keys(UNITS / "backhaul.target")["Wants"])


def test_the_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: it checks deploy/systemd (apt-get install systemd)")
    executable = PROJECT_ROOT / ".venv" / "bin" / "backhaul"
    assert executable.exists(), "verify resolves ExecStart: the checkout's .venv must be installed"
    # As an operator installs them elsewhere than /opt/backhaul (deploy/systemd/README.md): paths substituted,
    # the executable quoted in case the checkout's path holds a space.
    copies = []
    for unit in sorted(UNITS.glob("backhaul*.*")):
        if unit.suffix not in (".service", ".target"):
            continue
        text = unit.read_text().replace(f"ExecStart={INSTALLED_AT}/.venv/bin/backhaul", f'ExecStart="{executable}"')
        # Documentation= takes URLs: a path with a space or a non-ASCII letter is percent-encoded there,
        # and a unit file writes a literal % as %% (a single one starts a specifier such as %i).
        url = urllib.parse.quote(str(PROJECT_ROOT)).replace("%", "%%")
        text = text.replace(f"file:{INSTALLED_AT}", f"file:{url}")
        copy = tmp_path / unit.name
        copy.write_text(text.replace(INSTALLED_AT, str(PROJECT_ROOT)))
        copies.append(str(copy))
    assert len(copies) == len(WORKERS) + 1
    result = subprocess.run([analyze, "verify", *copies], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_would_see_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt key and a missing executable are reported."""
    analyze = shutil.which("systemd-analyze") or pytest.fail("systemd-analyze is missing")
    broken = tmp_path / "backhaul-api.service"
    broken.write_text((UNITS / "backhaul-api.service").read_text().replace("TasksMax=", "TaskMax="))
    result = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Unknown key 'TaskMax'" in result.stderr and "/opt/backhaul/.venv/bin/backhaul" in result.stderr
