"""The EMAIL channel: the router's rendered mail (recipient, subject, body) handed to the SMTP relay
(`BACKHAUL_SMTP_HOST`, `BACKHAUL_SMTP_PORT`; `workers.mail`). The relay is one endpoint for the
bulkheads; it is the operator's, so its address is not checked against the destination rule."""
from __future__ import annotations

from typing import Any

from workers.attempt import Outcome, email_attempt
from workers.channels.base import Channel, Context, Delivery, Request


class Email(Channel):
    name = "EMAIL"

    def endpoint(self, delivery: Delivery, request: Request | None, context: Context) -> str | None:
        return f"smtp://{context.settings.smtp_host}:{context.settings.smtp_port}"

    async def send(self, delivery: Delivery, attempts: int, callback: dict[str, Any], context: Context) -> Outcome:
        s, mail = context.settings, delivery["email"]
        return await email_attempt(s.smtp_host, s.smtp_port, mail["recipient"], mail["subject"], mail["body"],
                                   s.callback_timeout_s)
