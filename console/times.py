"""How the console writes and reads a time: epoch milliseconds as UTC text."""
from __future__ import annotations

from datetime import UTC, datetime


def utc_text(ms: int | float | str | None) -> str:
    """`2026-12-03 14:05:09 UTC` for epoch milliseconds, or "" for no time."""
    if ms is None or ms == "":
        return ""
    return datetime.fromtimestamp(float(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_utc(value: str) -> int | None:
    """A date-time form field (`YYYY-MM-DDTHH:MM[:SS]` or `YYYY-MM-DD`, read as UTC) in epoch ms; None when
    empty. ValueError names what is expected."""
    value = value.strip()
    if not value:
        return None
    for form in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(value, form).replace(tzinfo=UTC)
        except ValueError:
            continue
        return int(parsed.timestamp() * 1000)
    raise ValueError("is not a date and time: write it as YYYY-MM-DD HH:MM (UTC)")
