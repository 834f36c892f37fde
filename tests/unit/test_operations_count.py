"""The operations of the reference (Sigfox API v2's published document) that Backhaul serves, and the README's count.

An operation is a method and a path of the reference; Backhaul serves it when its route table has the
same method on the same path (under /v2, parameter names aside). The ones not served are exactly
those of tiles (the /coverages ones are served), left to the coverage issue; the README states the count.
"""
from __future__ import annotations

import re
from pathlib import Path

import orjson

from oss.api import RESOURCES

REFERENCE_FILE = Path(__file__).parent.parent / "reference" / "sigfox-api-v2-openapi.json"
README = Path(__file__).parent.parent.parent / "README.md"
METHODS = ("get", "post", "put", "delete", "patch")
NOT_SERVED = ("/tiles/monarch",)   # Sigfox Monarch: Backhaul runs no such service


def shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def reference_operations() -> set[tuple[str, str]]:
    document = orjson.loads(REFERENCE_FILE.read_bytes())
    return {(method.upper(), path) for path, operations in document["paths"].items()
            for method in operations if method in METHODS}


def served() -> set[tuple[str, str]]:
    return {(route.method, shape(route.path.removeprefix("/v2"))) for module in RESOURCES
            for route in module.routes if getattr(route, "path", "").startswith("/v2/")}


def test_every_operation_but_monarchs_is_served_and_the_readme_says_so() -> None:
    reference = reference_operations()
    ours = served()
    missing = sorted((method, path) for method, path in reference if (method, shape(path)) not in ours)
    assert [op for op in missing if not op[1].startswith(NOT_SERVED)] == [], \
        "operations of the reference Backhaul does not serve"
    assert len(reference) == 88 and len(missing) == 4, (len(reference), missing)
    count = f"**{len(reference) - len(missing)} of the reference's {len(reference)} operations**"
    readme = README.read_text()
    assert count in readme, f"the README must state the operations count: {count}"
    for method, path in missing:
        assert f"`{method} {path}`" in readme, f"the README must list {method} {path} as not served"
