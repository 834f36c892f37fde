"""What the HTTP channels (URL, BATCH_URL) share: opening a callback's secrets, the answer timeout,
one signed request, and reading a BIDIR answer.

Every request carries `webhook-id` (the delivery id, `webhookId` of a replay, or a batch's id: the
same on every retry and replay); one whose callback has a signing secret also `webhook-timestamp`
and `webhook-signature` (`backhaul.signing`). URL credentials go as Basic auth. Attempt texts built
from exceptions are scrubbed of the callback's secrets. Every request goes through the loop's
`backhaul.outbound.callback_session`, so a destination the rule refuses fails before any connection.
"""
from __future__ import annotations

import time
from typing import Any

import aiohttp

from backhaul.secretbox import SealedSecretError
from backhaul.settings import Settings
from backhaul.signing import signature_headers
from callback_language.downlink import downlink_timing
from callback_language.templates import TemplateError
from schemas.downlinks import uplink_time_ms
from workers.attempt import DOWNLINK_ANSWER_BYTES, Outcome, failed, http_attempt
from workers.channels.base import Answered, Channel, Context, Delivery
from workers.channels.bidir import downlink_records, later_attempt
from workers.credentials import CallbackCredentials, SendSecrets


class HttpChannel(Channel):
    """A channel that calls an HTTP endpoint: the first answer of a BIDIR downlink callback is read."""

    async def answered(self, delivery: Delivery, attempts: int, outcome: Outcome, answered_ms: int,
                       context: Context) -> Answered:
        if not delivery.get("downlink"):
            return Answered()
        if reads_downlink(delivery, attempts - 1):
            return await downlink_records(delivery, outcome, answered_ms, context)
        return later_attempt(outcome)


def reads_downlink(delivery: Delivery, attempts: int) -> bool:
    """Whether attempt `attempts + 1` of a delivery is read for a downlink: the first call of a downlink
    callback, never a retry or a replay (`webhookId`: sent again from the undelivered list)."""
    return bool(delivery.get("downlink")) and attempts == 0 and "webhookId" not in delivery


def answer_timeout(delivery: Delivery, attempts: int, settings: Settings, now_ms: int | None = None) -> float:
    """How long attempt `attempts + 1` waits for its answer: a downlink callback's first attempt no
    longer than until its answer is due (`downlink_answer_s` after the uplink's own time); once that
    has passed, the answer gives no downlink whatever comes, and the call waits as any other."""
    if reads_downlink(delivery, attempts):
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        left_s = (downlink_timing(settings).answer_by(uplink_time_ms(delivery)) - now_ms) / 1000
        if left_s > 0:
            return min(settings.callback_timeout_s, left_s)
    return settings.callback_timeout_s


def open_secrets(credentials: CallbackCredentials, cb: dict[str, Any] | None,
                 variables: dict[str, Any]) -> tuple[SendSecrets, dict[str, str]] | Outcome:
    """The callback's opened secrets and its secret headers for these variables, or the failed
    attempt saying why they cannot be had (the callback is gone, no key opens them, a header
    would be injected)."""
    if not cb:
        return failed("callback no longer exists")
    try:
        secrets = credentials.get(cb)
        return secrets, secrets.headers(variables)
    except SealedSecretError as exc:
        return failed(f"callback secrets: {exc}")
    except TemplateError as exc:
        return failed(str(exc), "render")


async def send_request(context: Context, method: str, url: str, headers: dict[str, str], body: bytes | None,
                       content_type: str | None, secrets: SendSecrets, webhook_id: str, timeout_s: float, *,
                       downlink: bool = False) -> Outcome:
    """One attempt; every request carries `webhook-id` (the same on every retry and replay), signed
    ones also webhook-timestamp and webhook-signature."""
    headers = dict(headers)
    if body is not None and content_type:
        headers.setdefault("Content-Type", content_type)
    if secrets.signing_secret:
        headers.update(signature_headers(secrets.signing_secret, webhook_id, body or b""))
    else:
        headers["webhook-id"] = webhook_id
    auth = aiohttp.BasicAuth(*secrets.basic_auth) if secrets.basic_auth else None
    outcome = await http_attempt(context.session, method, url, headers, body, auth, timeout_s,
                                 read_limit=DOWNLINK_ANSWER_BYTES if downlink else 0)
    outcome.info = secrets.scrub(outcome.info)
    return outcome
