"""A bounded description of bytes someone else sent: a prefix, the length and a digest.

Records that describe another record (a rejected frame, a dead letter) carry
this instead of a copy: whatever the input's size or content, the description
stays small (about 450 bytes as JSON), so it always fits the broker's limit,
and the digest still identifies the exact input.
"""
from __future__ import annotations

import base64
import hashlib
from typing import Any

PREFIX_BYTES = 256


def excerpt(data: bytes | None, prefix_bytes: int = PREFIX_BYTES) -> dict[str, Any] | None:
    """`{"prefix": base64 of the first bytes, "length": n, "sha256": hex}`, None for None."""
    if data is None:
        return None
    return {"prefix": base64.b64encode(data[:prefix_bytes]).decode("ascii"), "length": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


def bounded_text(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def tail_text(text: str, limit: int) -> str:
    """The last `limit` characters of `text` (a traceback's end names the failing line)."""
    if len(text) <= limit:
        return text
    return f"({len(text) - limit} characters before)...{text[-limit:]}"
