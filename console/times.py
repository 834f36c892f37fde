"""Times as the console shows them: epoch milliseconds as UTC text."""
from __future__ import annotations

from datetime import UTC, datetime


def utc_text(ms: int | float | None) -> str:
    """`2026-12-03 15:04:05 UTC` for epoch milliseconds; "" for none."""
    if ms is None or ms == "":
        return ""
    return datetime.fromtimestamp(float(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
