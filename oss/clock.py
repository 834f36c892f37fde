"""Epoch milliseconds, the API's unit of time, and ids of new entities."""
from __future__ import annotations

import secrets
import time
from datetime import datetime


def now_ms() -> int:
    return int(time.time() * 1000)


def ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def new_id() -> str:
    """An opaque 24-hex-character id, as Sigfox API v2 ids are."""
    return secrets.token_hex(12)
