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
(no `sendId`) are keyed `<deliveryId>#<attempt>`. A delivery the router could not
render has one "done" record too (`<deliveryId>:not-sent`, status 600, error
class `render`, dead). Every "done" record is built by `done`.

Read by the store (`callback_attempts`, `undelivered_callbacks`, the
callback's health); keyed by device id.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any, Literal, NotRequired, TypedDict, cast

import orjson

from schemas.deliveries import Delivery
from schemas.fields import Fields, NoneType, checked, wrong_type

SENDING = "sending"
DONE = "done"
SENDING_INFO = "sending: no answer yet"


class DeliveryResult(TypedDict):
    deliveryId: str
    callbackId: str
    device: str
    attempt: int
    time: int
    messageId: NotRequired[str | None]
    deviceTypeId: NotRequired[str | None]
    groupId: NotRequired[str | None]
    registrationId: NotRequired[int | None]
    kind: NotRequired[str]
    channel: NotRequired[str]
    sendId: NotRequired[str]     # records from before send ids have none
    state: NotRequired[Literal["sending", "done"]]  # none: "done" (records from before announcements)
    sentAt: NotRequired[int]
    # "done" only:
    status: NotRequired[int]
    errorClass: NotRequired[str]
    info: NotRequired[str | None]
    latencyMs: NotRequired[float]
    answer: NotRequired[str | None]
    final: NotRequired[bool]
    dead: NotRequired[bool]
    nextAttemptAt: NotRequired[int]
    delivery: NotRequired[Delivery]


REQUIRED: Fields = (("deliveryId", (str,)), ("callbackId", (str,)), ("device", (str,)), ("attempt", (int,)),
                    ("time", (int,)))
OPTIONAL: Fields = (("sendId", (str,)), ("state", (str,)), ("registrationId", (int, NoneType)),
                    ("delivery", (dict,)))


_SEND_ID_PREFIX = os.urandom(8).hex()  # this process's: a restarted worker never repeats an id
_send_counter = itertools.count()


def new_send_id() -> str:
    """A fresh id for one request (never reused, not even by a re-send after a crash): 32 hex digits, a
    random prefix per process and a counter (a uuid4 per request was 3 % of the delivery worker's CPU)."""
    return f"{_SEND_ID_PREFIX}{next(_send_counter):016x}"


def not_sent_id(delivery_id: str) -> str:
    """The send id of a delivery given up without a request (stable: one per delivery)."""
    return f"{delivery_id}:not-sent"


def about(delivery: Delivery) -> dict[str, Any]:
    """The fields of a result that say which delivery it belongs to."""
    return {
        "deliveryId": delivery["id"], "callbackId": delivery["callbackId"], "messageId": delivery.get("messageId"),
        "device": delivery["device"], "deviceTypeId": delivery.get("deviceTypeId"),
        "groupId": delivery.get("groupId"), "registrationId": delivery.get("registrationId"),
        "kind": delivery["kind"], "channel": delivery["channel"],
    }


def sending(delivery: Delivery, send_id: str, attempt: int, now_ms: int) -> DeliveryResult:
    """The announcement of a request about to be sent."""
    return cast(DeliveryResult, {**about(delivery), "sendId": send_id, "attempt": attempt, "state": SENDING,
                                 "sentAt": now_ms, "time": now_ms})


def done(delivery: Delivery, *, send_id: str, attempt: int, sent_at_ms: int, now_ms: int, status: int,
         error_class: str, info: str | None, latency_ms: float, answer: str | None = None,
         next_attempt_at_ms: int | None = None, dead_delivery: Delivery | None = None) -> DeliveryResult:
    """The outcome of try `attempt` of `delivery` (of request `send_id`, or `not_sent_id` when no
    request went). Final unless a next attempt is due at `next_attempt_at_ms`; dead (given up) when
    `dead_delivery` is given: the delivery as the undelivered list keeps it (a BATCH_URL member with
    its batch's request)."""
    result = cast(DeliveryResult, {
        **about(delivery), "sendId": send_id, "attempt": attempt, "state": DONE, "sentAt": sent_at_ms,
        "time": now_ms, "status": status, "errorClass": error_class, "info": info, "latencyMs": latency_ms,
        "answer": answer, "final": next_attempt_at_ms is None, "dead": dead_delivery is not None,
    })
    if dead_delivery is not None:
        result["delivery"] = dead_delivery
    if next_attempt_at_ms is not None:
        result["nextAttemptAt"] = next_attempt_at_ms
    return result


def is_sending(record: DeliveryResult) -> bool:
    return record.get("state") == SENDING


def send_key(record: DeliveryResult) -> str:
    """The id of the request a record is about (see the module docstring for older records)."""
    return record.get("sendId") or f"{record['deliveryId']}#{record['attempt']}"


# The record as JSON; orjson's own function, so that the hot path adds no Python call.
encode_delivery_result: Callable[[DeliveryResult], bytes] = orjson.dumps


def decode_delivery_result(raw: bytes) -> DeliveryResult:
    """The result in a record's value; raises naming the field it cannot use (see `schemas.fields`)."""
    result = checked(orjson.loads(raw), "delivery result", REQUIRED, OPTIONAL)
    if result.get("state") != SENDING and type(result["status"]) is not int:  # a completed send has a status
        raise wrong_type("delivery result", "status", (int,), result["status"])
    return cast(DeliveryResult, result)
