"""The gate of the layout (issue 11): ruff and mypy, configured in pyproject.toml, run with the tests
so `./scripts/test` and CI both fail on a new lint or type error."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = BIN / name
    path = str(found) if found.exists() else shutil.which(name)
    assert path, f"{name} is not installed: it is in the test extras (pip install -e '.[test]')"
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    done = run(tool("ruff"), "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_mypy_is_clean():
    """Strict on the runtime, the schemas and the callback language; checked everywhere else."""
    done = run(tool("mypy"), "--cache-dir", str(ROOT / ".local" / "mypy-cache"))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
