"""`Key=Value;Key=Value` strings, as Azure writes its connection strings (Event Hubs, IoT Hub): parsed
once here. Keys are case-insensitive, in any order, a trailing `;` is allowed, a value may hold `=`
(base64 keys end with it). Errors name the setting and never repeat a value: the strings are secrets.
"""
from __future__ import annotations

from typing import Any


class ConnectionStringError(ValueError):
    """A connection string that cannot be used: `channelSettings.connectionString: why`."""


def parse_key_values(text: Any, keys: tuple[str, ...], field: str) -> dict[str, str]:
    """The parts of `text` by canonical key (one of `keys`); ConnectionStringError naming `field` for a
    missing string, a line break, a part that is not Key=Value, an unknown, repeated or empty key."""
    if not isinstance(text, str) or not text.strip():
        raise ConnectionStringError(f"{field}: is required")
    if any(ch in text for ch in "\r\n\x00"):
        raise ConnectionStringError(f"{field}: must be one line (no CR, LF or NUL)")
    parts: dict[str, str] = {}
    for i, part in enumerate(p.strip() for p in text.strip().split(";")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip()
        canonical = next((k for k in keys if k.lower() == key.lower()), None)
        if not eq:
            raise ConnectionStringError(f"{field}: part {i + 1} is not Key=Value")
        if canonical is None:
            raise ConnectionStringError(f"{field}: unknown key {key[:40]!r}; expected {', '.join(keys)}")
        if canonical in parts:
            raise ConnectionStringError(f"{field}: {canonical} is given twice")
        if not value.strip():
            raise ConnectionStringError(f"{field}: {canonical} is empty")
        parts[canonical] = value.strip()
    return parts
