"""`backhaul ...` run as a user runs it, with a test's environment (its state folder and settings)."""
from __future__ import annotations

import json
import subprocess
import sys

from backhaul.settings import PROJECT_ROOT


class Cli:
    """`backhaul ARGS` in a child process, from the checkout, with `env`."""

    def __init__(self, env: dict[str, str], timeout_s: float = 120) -> None:
        self.env = env
        self.timeout_s = timeout_s

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "program.cli", *args], env=self.env, cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=self.timeout_s)
        if check and result.returncode:
            raise AssertionError(f"backhaul {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}{result.stderr}")
        return result

    def status(self) -> dict[str, dict]:
        """Each supervised process's line of `backhaul status --json`, by name."""
        return {p["name"]: p for p in json.loads(self("status", "--json").stdout)["processes"]}
