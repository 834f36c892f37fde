"""One delivery attempt over HTTP or SMTP, and what came of it.

An attempt never raises: every failure becomes an `Outcome` with status 600
(Sigfox's code for a failure without an HTTP status), an error class from
`workers.retry.classify` and a reason that is safe to log (no credentials).
Up to `ANSWER_BYTES` of the answer are kept for the record; a downlink answer
is read up to `DOWNLINK_ANSWER_BYTES` so that it can be parsed whole.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from backhaul.callback_secrets import redact_url
from backhaul.destinations import refusal_of
from callback_language.status import NON_HTTP_STATUS
from workers.mail import EmailDeliveryError, send_email
from workers.retry import classify, is_success, parse_retry_after

ANSWER_BYTES = 1024
DOWNLINK_ANSWER_BYTES = 64 * 1024
SMTP_OK = 250


@dataclass(slots=True)
class Outcome:
    status: int
    error_class: str
    info: str | None
    latency_ms: float
    answer: str | None = None
    retry_after: float | None = None
    content_type: str | None = None
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.error_class == "ok"


def failed(reason: str, error_class: str = "other", latency_ms: float = 0.0) -> Outcome:
    """An attempt that ended without an HTTP status."""
    return Outcome(NON_HTTP_STATUS, error_class, reason, latency_ms)


async def _read_upto(content: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def http_attempt(session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str],
                       body: bytes | None, auth: aiohttp.BasicAuth | None, timeout_s: float,
                       *, read_limit: int = ANSWER_BYTES) -> Outcome:
    """Send one request; redirects are not followed (a 3xx is not a success).

    A destination the session's rule refuses (see `backhaul.outbound`) is a failed
    attempt of class `destination`, refused before any connection.
    """
    started = time.monotonic()
    try:
        async with session.request(method, url, data=body, headers=headers, auth=auth,
                                   timeout=aiohttp.ClientTimeout(total=timeout_s),
                                   allow_redirects=False) as resp:
            raw = await _read_upto(resp.content, max(read_limit, ANSWER_BYTES))
            latency = (time.monotonic() - started) * 1000
            status = resp.status
            return Outcome(status, classify(status, None), None if is_success(status) else f"HTTP {status}",
                           latency, raw[:ANSWER_BYTES].decode("utf-8", "replace"),
                           parse_retry_after(resp.headers.get("Retry-After"), time.time()),
                           resp.headers.get("Content-Type"), raw)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is not None:
            reason = f"destination refused: {refusal.reason}"
        else:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return failed(redact_url(reason), classify(None, exc), (time.monotonic() - started) * 1000)


async def email_attempt(host: str, port: int, recipient: str, subject: str, body: str, timeout_s: float) -> Outcome:
    """Hand one mail to the SMTP server; 250 when it took it."""
    started = time.monotonic()
    try:
        await send_email(host, port, "backhaul@localhost", recipient, subject, body, timeout=timeout_s)
    except EmailDeliveryError as exc:
        return failed(str(exc), "other", (time.monotonic() - started) * 1000)
    return Outcome(SMTP_OK, "ok", None, (time.monotonic() - started) * 1000)
