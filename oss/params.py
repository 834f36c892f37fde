"""Reading a request: JSON bodies, query parameters and path ids, refused with the field named."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, overload

import orjson
from aiohttp import web

from oss.errors import BadRequest, FieldError, PayloadTooLarge, UnsupportedMediaType

OID = re.compile(r"[0-9a-f]{24}")
DEVICE_ID = re.compile(r"[0-9A-Fa-f]{1,8}")
PAC = re.compile(r"[0-9A-Fa-f]{16}")
INT32 = 2**31 - 1
INT64 = 2**63 - 1
# The years a path may name (consumption).
FIRST_YEAR, LAST_YEAR = 1970, 9999


@dataclass(frozen=True)
class BodyLimits:
    """The most bytes a request body may hold: an entity's JSON, or a bulk upload (CSV or JSON rows)."""

    json: int
    bulk: int


BODY_LIMITS = web.AppKey("body_limits", BodyLimits)


# A body handed to a handler in-process (the console calls the API's handlers without HTTP).
GIVEN_BODY = web.RequestKey("given_body", bytes)


async def read_body(request: web.Request, *, bulk: bool = False) -> bytes:
    """The request body; 413 naming the limit when it is larger (checked before reading it whole)."""
    limits = request.app[BODY_LIMITS]
    limit, what = (limits.bulk, "bulk upload") if bulk else (limits.json, "JSON body")
    given = request.get(GIVEN_BODY)
    if given is not None:  # the console calling a handler in-process (console/api_calls.py)
        if len(given) > limit:
            raise PayloadTooLarge(limit, what)
        return given
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit, what)
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit, what)
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: web.Request, *, bulk: bool = False) -> Any:
    """The decoded JSON body; 400 when it is absent or not JSON, 413 when over the limit."""
    raw = await read_body(request, bulk=bulk)
    if not raw.strip():
        raise BadRequest(FieldError("body", "missing: a JSON body is required"))
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(FieldError("body", f"not valid JSON: {exc}")) from None


def is_csv(request: web.Request) -> bool:
    """Whether the body is a CSV upload (text/csv or text/plain) rather than JSON."""
    kind = request.content_type
    if kind in ("text/csv", "text/plain"):
        return True
    if kind in ("application/json", "application/octet-stream", ""):
        return False
    raise UnsupportedMediaType(f"Content-Type {kind} is not accepted: send application/json or text/csv")


def oid(request: web.Request, name: str = "id") -> str:
    """An OSS entity id from the path (24 lower-case hex characters)."""
    value = request.match_info[name]
    if not OID.fullmatch(value):
        raise BadRequest(FieldError(name, "must be 24 hexadecimal characters", "path"))
    return value


def device_id(request: web.Request, name: str = "id") -> str:
    """A device id from the path, normalised to upper case."""
    value = request.match_info[name]
    if not DEVICE_ID.fullmatch(value):
        raise BadRequest(FieldError(name, "must be 1 to 8 hexadecimal characters", "path"))
    return value.upper()


def path_int(request: web.Request, name: str, *, lo: int, hi: int) -> int:
    """An integer from the path, from `lo` to `hi`."""
    value = request.match_info[name]
    if not value.isascii() or not value.isdigit() or not lo <= int(value) <= hi:
        raise BadRequest(FieldError(name, f"must be an integer from {lo} to {hi}", "path"))
    return int(value)


def _raw(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if "\x00" in value:
        raise BadRequest(FieldError(name, "must not contain NUL characters", "query"))
    return value


def q_str(request: web.Request, name: str, *, max_length: int = 1000) -> str | None:
    value = _raw(request, name)
    if value is not None and len(value) > max_length:
        raise BadRequest(FieldError(name, f"must be at most {max_length} characters", "query"))
    return value


@overload
def q_int(request: web.Request, name: str, *, default: int, lo: int = ..., hi: int = ...) -> int: ...
@overload
def q_int(request: web.Request, name: str, *, default: None = None, lo: int = ..., hi: int = ...) -> int | None: ...
def q_int(request: web.Request, name: str, *, default: int | None = None,
          lo: int = -INT64, hi: int = INT64) -> int | None:
    value = _raw(request, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(FieldError(name, f"must be an integer, got {value[:40]!r}", "query")) from None
    if not lo <= number <= hi:
        raise BadRequest(FieldError(name, f"must be between {lo} and {hi}", "query"))
    return number


@overload
def q_float(request: web.Request, name: str, *, lo: float, hi: float, default: float) -> float: ...
@overload
def q_float(request: web.Request, name: str, *, lo: float, hi: float, default: None = None) -> float | None: ...
def q_float(request: web.Request, name: str, *, lo: float, hi: float, default: float | None = None) -> float | None:
    """A finite decimal number from `lo` to `hi` (e.g. a latitude)."""
    value = _raw(request, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(FieldError(name, f"must be a number, got {value[:40]!r}", "query")) from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise BadRequest(FieldError(name, f"must be a number from {lo:g} to {hi:g}", "query"))
    return number


@overload
def q_bool(request: web.Request, name: str, *, default: bool) -> bool: ...
@overload
def q_bool(request: web.Request, name: str, *, default: None = None) -> bool | None: ...
def q_bool(request: web.Request, name: str, *, default: bool | None = None) -> bool | None:
    value = _raw(request, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise BadRequest(FieldError(name, "must be true or false", "query"))


def q_list(request: web.Request, name: str) -> list[str]:
    value = _raw(request, name)
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


def q_ints(request: web.Request, name: str) -> list[int]:
    out = []
    for value in q_list(request, name):
        try:
            out.append(int(value))
        except ValueError:
            raise BadRequest(FieldError(name, f"{value[:40]!r} is not an integer", "query")) from None
        if abs(out[-1]) > INT32:
            raise BadRequest(FieldError(name, f"{value[:40]!r} is out of range", "query"))
    return out


def q_oids(request: web.Request, name: str) -> list[str]:
    values = q_list(request, name)
    for value in values:
        if not OID.fullmatch(value):
            raise BadRequest(FieldError(name, f"{value[:40]!r} is not a 24 hexadecimal character id", "query"))
    return values


@overload
def q_oid(request: web.Request, name: str, *, required: Literal[True]) -> str: ...
@overload
def q_oid(request: web.Request, name: str, *, required: bool = False) -> str | None: ...
def q_oid(request: web.Request, name: str, *, required: bool = False) -> str | None:
    value = _raw(request, name)
    if value is None:
        if required:
            raise BadRequest(FieldError(name, "is required", "query"))
        return None
    if not OID.fullmatch(value):
        raise BadRequest(FieldError(name, "must be 24 hexadecimal characters", "query"))
    return value


def q_choice(request: web.Request, name: str, choices: tuple[str, ...], default: str) -> str:
    value = _raw(request, name) or default
    if value not in choices:
        raise BadRequest(FieldError(name, f"must be one of {', '.join(choices)}", "query"))
    return value
