"""The URL channel: one HTTP request per delivery, rendered by the router (method, url, headers, body).

The callback's secrets (Basic auth from the URL credentials, secret headers, signing secret) are
opened at send time from the configuration view (`workers.credentials`): deliveries carry none.
A callback that is gone, or whose secrets no configured key opens, fails the attempt.
"""
from __future__ import annotations

from typing import Any

from workers.attempt import Outcome
from workers.bulkhead import endpoint_key
from workers.channels.base import Context, Delivery, Request
from workers.channels.http import HttpChannel, answer_timeout, open_secrets, reads_downlink, send_request


class Url(HttpChannel):
    name = "URL"

    def endpoint(self, delivery: Delivery, request: Request | None, context: Context) -> str | None:
        url = delivery["request"]["url"]
        return endpoint_key(url) if url else None

    async def send(self, delivery: Delivery, attempts: int, callback: dict[str, Any], context: Context) -> Outcome:
        req = delivery["request"]
        opened = open_secrets(context.credentials, callback, delivery.get("variables") or {})
        if isinstance(opened, Outcome):
            return opened
        secrets, secret_headers = opened
        text = req.get("body")
        body = text.encode() if text is not None else None
        return await send_request(context, req["method"], req["url"],
                                  {**(req.get("headers") or {}), **secret_headers}, body, req.get("contentType"),
                                  secrets, delivery.get("webhookId") or delivery["id"],
                                  answer_timeout(delivery, attempts, context.settings),
                                  downlink=reads_downlink(delivery, attempts))
