"""The BATCH_URL channel: the deliveries of one callback gathered for `batch_window_s` (by the loop)
go as one HTTP request.

The lines (the callback's `linePattern` rendered with each member's variables) are joined by `\\n`
in the body (POST, PUT) and URL-encoded in `{batch}` (`callback_language.templates.render_batch`).
The request's `webhook-id` is derived from the members, and the loop gives members that fail
together the same jittered delay, so a retried batch comes back whole, with the same id. A batch
keeps to its endpoint's rate limit and concurrency but not to the per-device order rules: its lines
are in the order the batch got its members.
"""
from __future__ import annotations

import hashlib

from callback_language.templates import TemplateError, render_batch
from schemas.deliveries import http_request
from workers.attempt import Outcome, failed
from workers.bulkhead import endpoint_key
from workers.channels.base import BatchRequest, Context, Delivery, Request
from workers.channels.http import HttpChannel, answer_timeout, open_secrets, reads_downlink, send_request


class BatchUrl(HttpChannel):
    name = "BATCH_URL"
    batched = True

    def endpoint(self, delivery: Delivery, request: Request | None, context: Context) -> str | None:
        url = request.get("url") if request else None
        return endpoint_key(url) if url else None

    def batch(self, callback_id: str, members: list[tuple[Delivery, int]], context: Context) -> BatchRequest:
        batch_id = "batch:" + hashlib.sha256(
            "\n".join(sorted(d.get("webhookId") or d["id"] for d, _ in members)).encode()).hexdigest()[:32]
        cb = context.view.callbacks.get(callback_id)
        compiled = context.compiled.get(cb) if cb else None
        if compiled is None:
            return BatchRequest(batch_id, failed("callback no longer exists or does not compile"))
        try:
            req = render_batch(compiled, [d["variables"] for d, _ in members])
        except TemplateError as exc:
            return BatchRequest(batch_id, failed(str(exc)))
        opened = open_secrets(context.credentials, cb, {})  # batch header values hold no variables
        if isinstance(opened, Outcome):
            return BatchRequest(batch_id, opened)
        secrets, secret_headers = opened
        request = http_request(req.method, req.url, req.headers, req.body, req.content_type)
        downlink = any(reads_downlink(d, a) for d, a in members)
        timeout = min(answer_timeout(d, a, context.settings) for d, a in members)
        return BatchRequest(batch_id, request=request, endpoint=endpoint_key(req.url), send=lambda: send_request(
            context, req.method, req.url, {**req.headers, **secret_headers}, req.body, req.content_type,
            secrets, batch_id, timeout, downlink=downlink))
