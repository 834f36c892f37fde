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


def allow_images_from(response: web.StreamResponse, origin: str) -> None:
    """Let this answer's page show images from `origin` too (a map's base layer), the rest of the policy kept."""
    policy = response.headers.get("Content-Security-Policy", SECURITY_HEADERS["Content-Security-Policy"])
    response.headers["Content-Security-Policy"] = policy.replace("img-src 'self' data:",
                                                                 f"img-src 'self' data: {origin}")


def finish(request: web.Request, response: web.StreamResponse) -> None:
    """Add the console's headers to an answer not sent yet."""
    if response.prepared:
        return
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    started = request.get(STARTED)
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
