"""Fixtures of the console's browser tests (tests/console/harness.py)."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.console.harness import Browser, Site, browser_missing, browser_on


@pytest.fixture(scope="session")
def site(stack) -> Iterator[Site]:
    """One API + console for the whole run of browser tests, on a fresh database."""
    missing = browser_missing()
    if missing:
        pytest.fail(missing)
    served = Site(f"bh_console_{uuid.uuid4().hex[:8]}")
    yield served
    served.close()


@pytest.fixture
def browser(site, tmp_path) -> Iterator[Browser]:
    with browser_on(site, tmp_path) as opened:
        yield opened
