"""Send one test callback now: the callback's templates rendered with sample values, sent once.

How (README "API v2 compatibility", the test operation): the stored callback (reached only through its
device type in the caller's groups) is compiled by `callback_language` exactly as the router compiles
it, rendered with `callback_language.variables.sample` values (a `customData#` field gets 42), its
secrets opened as the delivery worker opens them, and sent once through `backhaul.outbound`'s client:
the destination rule is applied to the URL and again to every address the name resolves to, so a test
reaches nothing a delivery could not. No redirect is followed, nothing is retried, nothing is stored.
The request carries `webhook-id: test-<ms>` and, when the callback signs, the Standard Webhooks signature
(`backhaul.signing`, as the delivery worker signs). An EMAIL callback is rendered but not
sent (mail goes through the operator's relay, which the API does not hold): the answer says so.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from backhaul.callback_secrets import open_callback
from backhaul.destinations import DestinationPolicy, refusal_of
from backhaul.outbound import callback_session
from backhaul.secretbox import keyring
from backhaul.signing import signature_headers
from callback_language.bindings import SUBTYPE_KIND
from callback_language.compiled import callback_spec
from callback_language.templates import (
    TEMPLATED_SETTINGS,
    TemplateError,
    compile_callback,
    compile_template,
    render_batch,
    render_email,
    render_publish,
    render_request,
)
from callback_language.variables import sample

ANSWER_BYTES = 200


@dataclass(frozen=True)
class TestOutcome:
    """What became of a test send: `status` (HTTP), or `error` (why nothing was answered)."""

    sent: bool
    status: int | None
    duration_ms: int
    answer: str
    error: str | None
    request: str  # method and URL sent (no credentials)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sent": self.sent, "durationMs": self.duration_ms, "request": self.request}
        if self.status is not None:
            out["status"] = self.status
        if self.answer:
            out["answer"] = self.answer
        if self.error:
            out["error"] = self.error
        return out


def sample_variables(names: frozenset[str]) -> dict[str, Any]:
    return {name: sample(name) for name in names}


async def send_test(row: Mapping[str, Any], destinations: DestinationPolicy, timeout_s: float) -> TestOutcome:
    """Render the callbacks `row` with sample values and send it once (URL, BATCH_URL)."""
    kind = SUBTYPE_KIND[row["callback_subtype"]]
    try:
        compiled = compile_callback(callback_spec(dict(row), kind))
    except TemplateError as exc:
        return TestOutcome(False, None, 0, "", f"the callback does not compile: {exc}", "")
    variables = sample_variables(compiled.variables)
    if compiled.channel == "EMAIL":
        recipient, subject, _ = render_email(compiled, variables)
        return TestOutcome(False, None, 0, "", "EMAIL callbacks are rendered, not sent, by a test: mail goes "
                                                f"through the operator's relay (to {recipient}: {subject!r})",
                           f"mail to {recipient}")
    if compiled.channel in TEMPLATED_SETTINGS:
        try:
            # An AZURE_EVENT_HUBS callback without a topic goes to its connection string's EntityPath (a secret).
            topic = render_publish(compiled, variables).get("topic") or "EntityPath"
            if compiled.channel == "AZURE_IOT_HUB":  # the topic is IoT Hub's, of the identity
                topic = "devices/<deviceId>/messages/events/"
        except TemplateError as exc:
            return TestOutcome(False, None, 0, "", f"the callback does not render: {exc}", "")
        return TestOutcome(False, None, 0, "", f"{compiled.channel} callbacks are rendered, not sent, by a test "
                                               f"(topic {topic!r})", f"publish to {topic}")
    request = render_request(compiled, variables) if compiled.channel == "URL" else render_batch(compiled, [variables])
    secrets = open_callback(row, keyring())
    headers = dict(request.headers)
    for name, value in secrets.headers.items():
        headers[name] = compile_template(value, kind=kind, field=f"headers.{name}").render_header(variables)
    if request.body is not None and request.content_type:
        headers.setdefault("Content-Type", request.content_type)
    webhook_id = f"test-{int(time.time() * 1000)}"
    if secrets.signing_secret:  # signed as the delivery worker signs (a receiver that verifies accepts the test)
        headers.update(signature_headers(secrets.signing_secret, webhook_id, request.body or b""))
    else:
        headers["webhook-id"] = webhook_id
    credentials = secrets.basic_auth or request.basic_auth
    auth = aiohttp.BasicAuth(*credentials) if credentials else None
    shown = f"{request.method} {request.url}"
    started = time.monotonic()
    try:
        async with callback_session(destinations) as session, session.request(
                request.method, request.url, data=request.body, headers=headers, auth=auth, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            raw = await resp.content.read(ANSWER_BYTES)
            return TestOutcome(True, resp.status, _ms(started), secrets.scrub(raw.decode("utf-8", "replace")) or "",
                               None, shown)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is the outcome shown to the person testing
        refusal = refusal_of(exc)
        reason = f"destination refused: {refusal.reason}" if refusal else (f"{type(exc).__name__}: {exc}"
                                                                           if str(exc) else type(exc).__name__)
        return TestOutcome(False, None, _ms(started), "", secrets.scrub(reason), shown)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
