"""Errors in the Sigfox API v2 shape, raised by handlers and rendered once."""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON, headers=headers)


class ApiError(Exception):
    """An error answer: `status` and the v2 body."""

    status = 500
    default = "Internal server error"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.default)
        self.message = message or self.default
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"message": self.message}

    def response(self) -> web.Response:
        return json_response(self.body(), self.status, self.headers)


class FieldError(ValueError):
    """One bad field: where it was (`body`, `query`, `path`), its name and why."""

    def __init__(self, field: str, message: str, type: str = "body", *, position: int | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.type = type
        self.position = position  # 0-based offset into the field's text (templates, grammars); not answered

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "field": self.field, "message": self.message}


class BadRequest(ApiError):
    status = 400
    default = "Invalid request"

    def __init__(self, errors: list[FieldError] | FieldError, message: str | None = None) -> None:
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        first = self.errors[0] if self.errors else None
        super().__init__(message or (f"{first.field}: {first.message}" if first else None))

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "errors": [e.as_dict() for e in self.errors]}


class Unauthorized(ApiError):
    status = 401
    default = "Authentication required: HTTP Basic with an API user's id and access token"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Basic realm="backhaul"'})


class Forbidden(ApiError):
    status = 403
    default = "You are not allowed to access the resource."


class NotFound(ApiError):
    status = 404
    default = "The requested resource was not found."


class MethodNotAllowed(ApiError):
    status = 405
    default = "Method not allowed"

    def __init__(self, allowed: list[str]) -> None:
        super().__init__()
        self.allowed = sorted(allowed)
        self.headers = {"Allow": ", ".join(self.allowed)}

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "allowedMethods": self.allowed}


class Conflict(ApiError):
    status = 409
    default = "A conflict happened with the current state of the resource."


class TooManyRequests(ApiError):
    status = 429
    default = "Too many requests"

    def __init__(self, retry_after: int, what: str = "Too many requests") -> None:
        super().__init__(f"{what}: retry in {retry_after} s", headers={"Retry-After": str(retry_after)})


class ServiceUnavailable(ApiError):
    """The database is unreachable: nothing is wrong with the request, try it again shortly."""

    status = 503
    default = "Service unavailable: the database cannot be reached right now; try again in a few seconds"
    RETRY_AFTER_S = 5

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": str(self.RETRY_AFTER_S)})


class PayloadTooLarge(ApiError):
    status = 413
    default = "Request body too large"

    def __init__(self, limit: int, what: str = "request body") -> None:
        super().__init__(f"body: the {what} is over the limit of {limit} bytes")
        self.limit = limit
        self.what = what

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "errors": [
            {"type": "body", "field": "body", "message": f"the {self.what} must be at most {self.limit} bytes"}]}


class UnsupportedMediaType(ApiError):
    status = 415
    default = "Unsupported content type"
