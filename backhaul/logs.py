"""Structured logs: one JSON object per line on stderr.

Writing a log line never raises: a value JSON cannot hold is written as its
`repr`, a key that is not a string as its `str`, a message whose arguments do
not fit its format as the raw format and arguments, and if all else fails the
line says so and keeps the message. The process's role is added to every
line by a handler filter, only where the line does not name one itself.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson

_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# A traceback is kept whole up to this many characters, then its end (where it was raised).
EXC_CHARS = 16_000
VALUE_CHARS = 4_000


def _repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001  (a repr that raises must not lose the line)
        text = f"<{type(value).__name__} without a repr>"
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "..."


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001  (bad %-arguments: keep the format and the arguments)
        return f"{_repr(record.msg)} % {_repr(record.args)}"


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    exc_info = record.exc_info
    assert exc_info is not None  # called only for a record that has one
    try:
        text = formatter.formatException(exc_info)
    except Exception:  # noqa: BLE001
        text = f"{_repr(exc_info[1])} (its traceback could not be formatted)"
    return text if len(text) <= EXC_CHARS else f"...{text[-EXC_CHARS:]}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record),
        }
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = _exception(self, record)
        try:
            return orjson.dumps(out, default=_repr, option=orjson.OPT_NON_STR_KEYS).decode()
        except Exception:  # noqa: BLE001  (too deep, an integer beyond 64 bits, ...)
            pass
        safe = {str(k): v if isinstance(v, str) else _repr(v) for k, v in out.items()}
        try:
            return orjson.dumps(safe).decode()
        except Exception:  # noqa: BLE001  (a lone surrogate in a str, say)
            return orjson.dumps({k: v.encode("utf-8", "backslashreplace").decode("ascii", "replace")
                                 for k, v in safe.items()}).decode()


class RoleFilter(logging.Filter):
    """Adds `role` to every line that does not carry one."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "role"):
            record.role = self.role
        return True


class RepeatFilter(logging.Filter):
    """Lets a client library's line through at most once per `every_s` for each (logger, level,
    message template); the next one that passes carries `repeated`, how many were left out.

    While Kafka is away aiokafka logs every failed reconnection and metadata request, hundreds of
    lines a second per process (its sender retries without a pause): that would fill the disk and
    take the CPU the broker needs to come back. Our own lines are never held back."""

    MAX_KEYS = 1000

    def __init__(self, prefixes: tuple[str, ...] = ("aiokafka",), every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.every_s = every_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key -> [when it last passed, left out since]

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(record.name == p or record.name.startswith(p + ".") for p in self.prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.every_s:
            seen[1] += 1
            return False
        if len(self._seen) >= self.MAX_KEYS:
            self._seen.clear()
        if seen is not None and seen[1]:
            record.repeated = seen[1]
        self._seen[key] = [now, 0]
        return True


def setup_logging(level: str = "INFO", role: str | None = None, stream: TextIO | None = None) -> None:
    """Send JSON logs to stderr (or `stream`); `role` is added to every line, and the Kafka
    client's repeated lines are thinned out (RepeatFilter)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter())
    if role:
        handler.addFilter(RoleFilter(role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
