"""Imports point one way (DESIGN.md, "Dependencies point one way"):

    program, bench     the shell: starts everything, imported by nothing below it
    console            the web console: a face of oss, imported only by the program
    oss | ingest | router | workers | store | simulator    stages: never import each other
    callback_language | radio    what callbacks are written in; the radio physics (path loss, link budgets)
    backhaul           the runtime every stage uses
    schemas            typed records, topic names, SQL: imports nothing of ours

Every import is read from the source (function-level imports included), so a rule cannot be
dodged by importing late. A second test finds import cycles between modules.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL = {"program", "bench"}
STAGES = {"oss", "ingest", "router", "workers", "store", "simulator"}
# The console is a face of the operations support system: it stands on oss (and below), nothing but the
# program imports it.
FACES = {"console"}
# The radio physics and the callback language are libraries of the domain: the stages use them, they use
# only the runtime and the schemas, and never each other.
LIBRARIES = {"callback_language", "radio"}
LEVEL = {"schemas": 0, "backhaul": 1, **{s: 2 for s in LIBRARIES}, **{s: 3 for s in STAGES}, **{s: 4 for s in FACES},
         **{s: 5 for s in SHELL}}


def modules() -> dict[str, Path]:
    """Every module of ours by dotted name."""
    found = {}
    for package in LEVEL:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(path: Path, *, top_level_only: bool = False) -> set[str]:
    """The absolute module names `path` imports (for `from a.b import c`: `a.b.c` when that is a
    module, else `a.b`)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(edges: set[tuple[str, str]]) -> list[str]:
    """The package edges (importer, imported) that break the layering, each with the rule it breaks."""
    broken = []
    for importer, target in sorted(edges):
        if importer == target or target not in LEVEL:
            continue
        if importer in SHELL and target in SHELL:
            continue  # `backhaul bench` is a program command; the bench starts workers as the program does
        if importer in STAGES and target in STAGES:
            broken.append(f"{importer} -> {target}: stages never import each other")
        elif importer in LIBRARIES and target in LIBRARIES:
            broken.append(f"{importer} -> {target}: libraries never import each other")
        elif target in SHELL:
            broken.append(f"{importer} -> {target}: nothing imports the program")
        elif importer == "schemas":
            broken.append(f"{importer} -> {target}: schemas imports nothing of ours")
        elif LEVEL[target] >= LEVEL[importer]:
            broken.append(f"{importer} -> {target}: imports point down")
    return broken


def package_edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, path in modules().items():
        for target in imported(path):
            edges[(name.split(".")[0], target.split(".")[0])].append(name)
    return edges


def test_the_rule_catches_each_kind_of_wrong_import():
    assert violations({("router", "workers"), ("workers", "router")}) == [
        "router -> workers: stages never import each other", "workers -> router: stages never import each other"]
    assert violations({("schemas", "backhaul")}) == ["schemas -> backhaul: schemas imports nothing of ours"]
    assert violations({("ingest", "program")}) == ["ingest -> program: nothing imports the program"]
    assert violations({("backhaul", "callback_language")}) == ["backhaul -> callback_language: imports point down"]
    assert violations({("callback_language", "router")}) == ["callback_language -> router: imports point down"]
    assert violations({("oss", "console")}) == ["oss -> console: imports point down"]
    assert violations({("console", "program")}) == ["console -> program: nothing imports the program"]
    assert violations({("router", "callback_language"), ("program", "bench"), ("oss", "aiohttp"),
                       ("workers", "schemas"), ("console", "oss"), ("program", "console")}) == []


def test_imports_point_down():
    edges = package_edges()
    broken = violations(set(edges))
    where = {b: sorted(set(edges[tuple(b.split(":")[0].split(" -> "))]))[:3] for b in broken}
    assert broken == [], f"imports against the layering (importing modules): {where}"


def test_every_package_has_a_level():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages - {"tests"} <= set(LEVEL), f"packages without a place in the layering: {packages - set(LEVEL)}"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    """Module-level imports only: an import inside a function runs late and cannot deadlock loading."""
    mods = modules()
    graph = {name: {t for t in imported(path, top_level_only=True) if t in mods and t != name}
             for name, path in mods.items()}
    # A package's __init__ re-exporting its modules is not a circle of design.
    graph = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}
    assert cycles(graph) == []
