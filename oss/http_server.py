"""The API's HTTP server: errors aiohttp raises itself answered in the v2 shape.

aiohttp refuses some requests before any middleware runs: a request line over
`REQUEST_LINE_LIMIT` bytes, a header over `HEADER_FIELD_LIMIT`, more than
`MAX_HEADERS` headers, a request it cannot parse. Left alone it answers them
as text/plain quoting the offending bytes and logs those bytes with a
traceback (an over-long Authorization header would put credentials in the
log). `ApiRunner` answers them as `{"message": ...}` JSON with the fitting
status (414, 431, 400) and logs one line naming the client and the kind of
error, never the bytes.

The two size limits differ on purpose: aiohttp reports both as the same
exception carrying the limit it hit, which tells a request line (414) from a
header (431).
"""
from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, BadStatusLine, HttpProcessingError, InvalidURLError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from oss.errors import json_response

log = logging.getLogger(__name__)
REQUEST_LINE_LIMIT = 16384
HEADER_FIELD_LIMIT = 8190
MAX_HEADERS = 128


def server_error(status: int, exc: BaseException | None) -> tuple[int, str]:
    """The status and v2 message for an error aiohttp's server raised itself (nothing of the request quoted)."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == REQUEST_LINE_LIMIT:
            return 414, f"Request line too long: at most {REQUEST_LINE_LIMIT} bytes"
        return 431, f"Request header too long: a header may have at most {HEADER_FIELD_LIMIT} bytes"
    if isinstance(exc, HttpProcessingError) and "Too many headers" in exc.message:
        return 431, f"Too many request headers: at most {MAX_HEADERS}"
    if isinstance(exc, BadHttpMethod):
        return 400, "Malformed request: invalid method"
    if isinstance(exc, InvalidURLError):
        return 400, "Malformed request: invalid request target"
    if isinstance(exc, BadStatusLine):
        return 400, "Malformed request line"
    if isinstance(exc, HttpProcessingError):
        return 400, "Malformed HTTP request"
    if status == 500:
        return 500, "Internal server error"
    try:
        return status, HTTPStatus(status).phrase
    except ValueError:
        return status, "Error"


class _V2ErrorHandler(RequestHandler):
    __slots__ = ()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        status, text = server_error(status, exc)
        if status >= 500:
            log.error("request failed in the HTTP server", exc_info=exc,
                      extra={"status": status, "client": request.remote})
        else:
            log.warning("request refused by the HTTP server",
                        extra={"status": status, "reason": text, "client": request.remote})
        response = json_response({"message": text}, status)
        response.force_close()
        return response


class _V2ErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _V2ErrorHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """`web.AppRunner` for the API: size limits above, server-level errors in the v2 shape."""

    def __init__(self, app: web.Application, **kwargs) -> None:
        kwargs.setdefault("max_line_size", REQUEST_LINE_LIMIT)
        kwargs.setdefault("max_field_size", HEADER_FIELD_LIMIT)
        kwargs.setdefault("max_headers", MAX_HEADERS)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        # The same server aiohttp builds (handler, factory, its keyword arguments), with our handler class.
        # This leans on aiohttp internals (Server._kwargs); tests/security/test_login.py sends the raw requests.
        server = await super()._make_server()
        return _V2ErrorServer(server.request_handler, request_factory=server.request_factory,
                              handler_cancellation=server.handler_cancellation, loop=asyncio.get_running_loop(),
                              **server._kwargs)
