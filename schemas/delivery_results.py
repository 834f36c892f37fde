"""The `delivery-results` record: one per request sent to a customer's server, before and after.

Every request is announced before it goes (`state: "sending"`) and completed
after its answer (`state: "done"`), both with the same `sendId`, so a request
the worker sent just before it crashed is on the record even though its answer
never was: the store closes such an open send as interrupted when the next
send of the same delivery arrives (`store.stage`).

    {"deliveryId": "<record id>/<callback id>", "sendId": "6f1c...", "attempt": 1,
     "state": "sending" | "done", "sentAt": <request started, ms>, "time": <recorded, ms>,
     "callbackId", "messageId", "device", "deviceTypeId", "groupId", "registrationId",
     "kind", "channel",
     # "done" only:
     "status": 200 | 600 | ..., "errorClass": "ok" | "http_5xx" | ..., "info", "latencyMs",
     "answer", "final": true, "dead": false, "nextAttemptAt": <ms, when final is false>,
     "delivery": {...}   # the delivery itself, when dead (for the undelivered list and replay)
    }

`attempt` is the try's place in the retry schedule (1 for the first try). A
delivery sent again after a crash repeats its try number, so the store numbers
the rows of `callback_attempts` itself, one per `sendId`, in the order the
sends were announced. A delivery given up without a request (held by an open
circuit until its schedule ran out) has a "done" record with `sendId`
`<deliveryId>:not-sent` and status 600. Records written before sends had ids
(no `sendId`) are keyed `<deliveryId>#<attempt>`.
"""
from __future__ import annotations

import uuid
from typing import Any

SENDING = "sending"
DONE = "done"
SENDING_INFO = "sending: no answer yet"


def new_send_id() -> str:
    """A fresh id for one request (never reused, not even by a re-send after a crash)."""
    return uuid.uuid4().hex


def not_sent_id(delivery_id: str) -> str:
    """The send id of a delivery given up without a request (stable: one per delivery)."""
    return f"{delivery_id}:not-sent"


def about(delivery: dict[str, Any]) -> dict[str, Any]:
    """The fields of a result that say which delivery it belongs to."""
    return {
        "deliveryId": delivery["id"], "callbackId": delivery["callbackId"], "messageId": delivery.get("messageId"),
        "device": delivery["device"], "deviceTypeId": delivery.get("deviceTypeId"),
        "groupId": delivery.get("groupId"), "registrationId": delivery.get("registrationId"),
        "kind": delivery["kind"], "channel": delivery["channel"],
    }


def sending(delivery: dict[str, Any], send_id: str, attempt: int, now_ms: int) -> dict[str, Any]:
    """The announcement of a request about to be sent."""
    return {**about(delivery), "sendId": send_id, "attempt": attempt, "state": SENDING, "sentAt": now_ms,
            "time": now_ms}


def is_sending(record: dict[str, Any]) -> bool:
    return record.get("state") == SENDING


def send_key(record: dict[str, Any]) -> str:
    """The id of the request a record is about (see the module docstring for older records)."""
    return record.get("sendId") or f"{record['deliveryId']}#{record['attempt']}"
