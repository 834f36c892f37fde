"""E-mail delivery (the EMAIL channel and alertEmail) over SMTP with aiosmtplib.

Choices:
- Plain text, UTF-8. Line breaks in the subject (it may come from a template)
  are folded into spaces rather than refused.
- `recipient` may hold several addresses separated by commas. If the server
  refuses any of them, the send counts as failed (the others got the mail).
- STARTTLS is used when the server offers it; no authentication yet.
- Every failure (connection, timeout, refusal, bad address) is raised as
  `EmailDeliveryError`, whose message names the server and the reason.
"""
from __future__ import annotations

import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib


class EmailDeliveryError(Exception):
    """The mail could not be handed to the SMTP server."""


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


async def send_email(
    host: str, port: int, sender: str, recipient: str, subject: str, body: str, timeout: float = 10
) -> None:
    """Send one plain-text mail; raise EmailDeliveryError on any failure."""
    where = f"SMTP {host}:{port}"
    message = EmailMessage()
    try:
        message["From"] = sender
        message["To"] = recipient
        message["Subject"] = _one_line(subject)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="backhaul")
        message.set_content(body)
    except (ValueError, TypeError) as exc:
        raise EmailDeliveryError(f"{where}: invalid message: {exc}") from exc
    try:
        refused, _ = await aiosmtplib.send(message, hostname=host, port=port, timeout=timeout)
    except aiosmtplib.SMTPException as exc:
        raise EmailDeliveryError(f"{where}: {type(exc).__name__}: {exc}") from exc
    except (OSError, TimeoutError) as exc:
        raise EmailDeliveryError(f"{where}: {type(exc).__name__}: {exc}") from exc
    if refused:
        names = ", ".join(f"{address} ({response.code} {response.message})" for address, response in refused.items())
        raise EmailDeliveryError(f"{where}: recipients refused: {names}")


class AlertLimiter:
    """At most one alert per key (e.g. (device type, callback)) per window.

    In memory, per process: a restart may let one extra alert through.
    `now` is any clock in seconds, used consistently (time.time() by default).
    """

    def __init__(self, per_hours: float = 1.0) -> None:
        if not per_hours >= 0:
            raise ValueError(f"per_hours={per_hours!r}: must be >= 0")
        self.window_s = per_hours * 3600.0
        self._last: dict[object, float] = {}
        self._prune_at = 1024

    def should_send(self, key: object, now: float | None = None) -> bool:
        """True (and the window starts) if no alert went for `key` within the window."""
        now = time.time() if now is None else now
        last = self._last.get(key)
        if last is not None and now - last < self.window_s:
            return False
        self._last[key] = now
        if len(self._last) > self._prune_at:
            self._last = {k: t for k, t in self._last.items() if now - t < self.window_s}
            self._prune_at = max(1024, 2 * len(self._last))
        return True
