"""The report of ./scripts/mutation: the score of every mutated module and each surviving mutant's diff.

Run by the script with mutmut's venv, from the checkout, after `mutmut run` (it reads `mutants/*.meta`).
A module's score is killed / (mutants - skipped): a mutant the fast tests never reach ("no tests")
counts as surviving, as does a "suspicious" one (a run that neither passed nor failed cleanly).
"""
from __future__ import annotations

import argparse
import datetime
from collections import Counter
from pathlib import Path

from mutmut.configuration import config
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

KILLED = {"killed", "timeout", "caught by type check"}
NOT_COUNTED = {"skipped"}


def module_results() -> dict[str, dict[str, str]]:
    """Per mutated file: mutant name -> status, for the files mutmut has results of."""
    found: dict[str, dict[str, str]] = {}
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        if data.exit_code_by_key:
            found[str(path)] = {name: status_by_exit_code[code] for name, code in data.exit_code_by_key.items()}
    return found


def score(statuses: Counter[str]) -> tuple[int, int, float]:
    """(killed, counted, percent)."""
    counted = sum(n for s, n in statuses.items() if s not in NOT_COUNTED)
    killed = sum(n for s, n in statuses.items() if s in KILLED)
    return killed, counted, (100.0 * killed / counted if counted else 100.0)


def render(results: dict[str, dict[str, str]], seconds: int | None) -> str:
    lines = ["# Mutation report", "",
             f"Made by `./scripts/mutation` on {datetime.date.today().isoformat()}"
             + (f" in {seconds // 60} min {seconds % 60} s" if seconds is not None else "") + ".",
             "Score = killed / mutants; a mutant no fast test reaches (\"no tests\") counts as surviving.", "",
             "| module | mutants | killed | survived | no tests | other | score |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    total: Counter[str] = Counter()
    for path, by_name in sorted(results.items()):
        statuses = Counter(by_name.values())
        total += statuses
        killed, counted, percent = score(statuses)
        other = counted - killed - statuses["survived"] - statuses["no tests"]
        lines.append(f"| `{path}` | {counted} | {killed} | {statuses['survived']} | {statuses['no tests']} | "
                     f"{other} | {percent:.1f} % |")
    killed, counted, percent = score(total)
    other = counted - killed - total["survived"] - total["no tests"]
    lines.append(f"| **all** | {counted} | {killed} | {total['survived']} | {total['no tests']} | {other} | "
                 f"**{percent:.1f} %** |")
    lines += ["", "## Surviving mutants", ""]
    for path, by_name in sorted(results.items()):
        alive = sorted(n for n, s in by_name.items() if s not in KILLED | NOT_COUNTED)
        if not alive:
            continue
        lines += [f"### `{path}` ({len(alive)})", ""]
        for name in alive:
            try:
                diff = get_diff_for_mutant(name, path=path)
            except Exception as exc:  # a mutant of code changed since the run
                diff = f"(no diff: {exc})"
            lines += [f"`{name}`: {by_name[name]}", "", "```diff", diff, "```", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("tests/mutation/report.md"))
    parser.add_argument("--seconds", type=int, default=None, help="how long the run took")
    parser.add_argument("--alive", action="store_true", help="only print the names of the mutants not killed")
    args = parser.parse_args()
    config()  # reads [tool.mutmut] from pyproject.toml in the working directory
    results = module_results()
    if args.alive:
        print("\n".join(n for by_name in results.values() for n, s in by_name.items()
                        if s not in KILLED | NOT_COUNTED and s != "not checked"))
        return
    args.out.write_text(render(results, args.seconds))
    print(render(results, args.seconds).split("\n## ")[0])


if __name__ == "__main__":
    main()
