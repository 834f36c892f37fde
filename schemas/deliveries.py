"""The delivery record the router publishes to `deliveries`, and its validation.

One delivery is one callback to call for one record, already rendered:

    {"id": "<record id>/<callback id>", "callbackId": "...", "kind": "DATA",
     "channel": "URL" | "BATCH_URL" | "EMAIL" | "DIRECT", "recordId": "...",
     "messageId": "...", "device": "00AB12CD", "deviceTypeId": "...", "groupId": "...",
     "origin": <first frame, ms>, "createdAt": <routed, ms>, "messageTime": <the message's time, ms>,
     "scheduleFrom": <ms, a replay only>, "variables": {...}, "downlink": false,
     "request": {"method", "url", "headers", "body", "contentType", "auth"},   # URL
     "email": {"recipient", "subject", "body"},                               # EMAIL
     "downlinkData": "0011223344556677"}                                      # DIRECT

The retry schedule runs from `scheduleFrom` when given (a replay starts a
schedule of its own), else from `createdAt` (`workers.retry.give_up_at`).
`messageTime` is the time the undelivered list shows (older deliveries
without it: `origin`).

`delivery_problem` names what makes a record unusable by the delivery worker
(which dead-letters it instead of failing on it at send time).
"""
from __future__ import annotations

from typing import Any

CHANNELS = ("URL", "BATCH_URL", "EMAIL", "DIRECT")


def schedule_start_ms(delivery: dict[str, Any]) -> float:
    """When a delivery's retry schedule started: a replay's own start, else when it was routed."""
    return delivery.get("scheduleFrom") or delivery["createdAt"]


def message_time_ms(delivery: dict[str, Any]) -> float | None:
    """The time of the message (or event) a delivery is about."""
    return delivery.get("messageTime") or delivery.get("origin")


def _wrong(obj: dict[str, Any], field: str, kinds: tuple[type, ...], *, optional: bool = False) -> str | None:
    value = obj.get(field)
    if value is None:
        return None if optional else f"{field}: missing"
    if isinstance(value, bool) and bool not in kinds:
        return f"{field}: type must be {' or '.join(k.__name__ for k in kinds)}, got bool"
    if not isinstance(value, kinds):
        return f"{field}: type must be {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}"
    return None


def delivery_problem(obj: Any) -> str | None:
    """Why `obj` is not a delivery the worker can send (`field: reason`), or None."""
    if not isinstance(obj, dict):
        return f"delivery: type must be a JSON object, got {type(obj).__name__}"
    channel = obj.get("channel")
    if channel not in CHANNELS:
        return f"channel: must be one of {', '.join(CHANNELS)}"
    checks = [("id", (str,), False), ("device", (str,), False), ("kind", (str,), False),
              ("origin", (int, float), False), ("createdAt", (int, float), False),
              ("callbackId", (str,), channel == "DIRECT"), ("recordId", (str,), False),
              ("variables", (dict,), False),
              ("webhookId", (str,), True), ("downlink", (bool,), True),
              ("messageTime", (int, float), True), ("scheduleFrom", (int, float), True)]
    if channel == "URL":
        checks.append(("request", (dict,), False))
    elif channel == "EMAIL":
        checks.append(("email", (dict,), False))
    elif channel == "DIRECT":
        checks.append(("downlinkData", (str,), False))
    for field, kinds, optional in checks:
        problem = _wrong(obj, field, kinds, optional=optional)
        if problem:
            return problem
    if channel == "URL":
        req = obj["request"]
        for field, kinds, optional in (("method", (str,), False), ("url", (str,), False),
                                       ("headers", (dict,), True), ("body", (str,), True),
                                       ("contentType", (str,), True), ("auth", (list,), True)):
            problem = _wrong(req, field, kinds, optional=optional)
            if problem:
                return f"request.{problem}"
        headers = req.get("headers") or {}
        if not all(isinstance(v, str) for v in headers.values()):
            return "request.headers: every header value must be a string"
        auth = req.get("auth")
        if auth is not None and (len(auth) != 2 or not all(isinstance(a, str) for a in auth)):
            return "request.auth: must be [user, password]"
    elif channel == "EMAIL":
        for field in ("recipient", "subject", "body"):
            problem = _wrong(obj["email"], field, (str,))
            if problem:
                return f"email.{problem}"
    return None
