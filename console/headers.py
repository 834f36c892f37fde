"""The headers of every console answer: security (no caching, a strict CSP, no framing) and
`Server-Timing: app;dur=<ms>`, the time the console spent on the request (the bench of the device list
reads it). A streamed answer (the CSV export) gets them before its first byte: its time is then the time
to its headers."""
from __future__ import annotations

import time

from aiohttp import web

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
STARTED = web.RequestKey("console_started", float)


def start(request: web.Request) -> None:
    request[STARTED] = time.perf_counter()


def finish(request: web.Request, response: web.StreamResponse) -> None:
    """Add the console's headers to an answer not sent yet."""
    if response.prepared:
        return
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    started = request.get(STARTED)
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
