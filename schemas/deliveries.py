"""The delivery record the router publishes to `deliveries`, and its validation.

One delivery is one callback to call for one record, already rendered:

    {"id": "<record id>/<callback id>", "callbackId": "...", "kind": "DATA",
     "channel": "URL" | "BATCH_URL" | "EMAIL" | "DIRECT" | "MQTT" | ..., "recordId": "...",
     "messageId": "...", "device": "00AB12CD", "deviceTypeId": "...", "groupId": "...",
     "origin": <first frame, ms>, "createdAt": <routed, ms>, "messageTime": <the message's time, ms>,
     "scheduleFrom": <ms, a replay only>, "variables": {...}, "downlink": false,
     "request": {"method", "url", "headers", "body", "contentType", "auth"},   # URL
     "email": {"recipient", "subject", "body"},                               # EMAIL
     "publish": {"topic", "body", "contentType", "key"?},  # MQTT, KAFKA, AZURE_EVENT_HUBS, AWS_IOT, KINESIS, SQS,
                                                          # AZURE_IOT_HUB
     "downlinkTemplate": "{tapId}{rssi}{time}"}                               # DIRECT

The retry schedule runs from `scheduleFrom` when given (a replay starts a
schedule of its own), else from `createdAt` (`workers.retry.give_up_at`).
`messageTime` is the time the undelivered list shows (older deliveries
without it: `origin`).

`data` and `snr` are the message's, kept for the undelivered list. A replay
(`replayed`) is the same delivery under the id `<first id>#r<n>`, with
`webhookId` (the first id: receivers de-duplicate on it) and `scheduleFrom`;
it is never read for a downlink (`workers.channels.http.reads_downlink`).
A DIRECT delivery carries its device type's `downlinkDataString`, rendered once
the transmitting station is known (older records carry `downlinkData`, the
downlink rendered by the router).
Key: the callback id for BATCH_URL (the worker batches a callback's
deliveries), else the device id (`delivery_key`).

`decode_delivery` refuses a record the delivery worker cannot use with
`InvalidDelivery` naming the field (`delivery_problem`): the worker
dead-letters it instead of failing on it at send time.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, NotRequired, TypedDict, cast

import orjson

CHANNELS = ("URL", "BATCH_URL", "EMAIL", "DIRECT", "MQTT", "KAFKA", "AZURE_EVENT_HUBS",
            "AWS_IOT", "KINESIS", "SQS", "AZURE_IOT_HUB")
Channel = Literal["URL", "BATCH_URL", "EMAIL", "DIRECT", "MQTT", "KAFKA", "AZURE_EVENT_HUBS",
                  "AWS_IOT", "KINESIS", "SQS", "AZURE_IOT_HUB"]
# The channels whose delivery carries a `publish`: the destination is in the callback's channelSettings,
# read (with its secrets) by the delivery worker at send time.
PUBLISH_CHANNELS = ("MQTT", "KAFKA", "AZURE_EVENT_HUBS", "AWS_IOT", "KINESIS", "SQS", "AZURE_IOT_HUB")


class Request(TypedDict):
    """A rendered HTTP request, without any secret (the worker adds them at send time)."""

    method: str
    url: str
    headers: NotRequired[dict[str, str]]
    body: NotRequired[str | None]
    contentType: NotRequired[str | None]
    auth: NotRequired[list[str] | None]  # only in deliveries written before secrets were sealed


class Email(TypedDict):
    recipient: str
    subject: str
    body: str


class Publish(TypedDict):
    """A rendered message of a channel with settings (MQTT, KAFKA): topic and body, no destination."""

    topic: str
    body: str
    contentType: str
    key: NotRequired[str]  # KINESIS: the rendered partition key (absent: the device id)


class Delivery(TypedDict):
    id: str
    channel: Channel
    kind: str                  # DATA, DATA_ADVANCED, an event type, or DOWNLINK (DIRECT)
    device: str
    recordId: str
    origin: int                # the record's first frame (or the event's time), ms
    createdAt: int             # routed, ms
    variables: dict[str, Any]
    callbackId: str | None     # None for DIRECT
    messageId: NotRequired[str | None]
    deviceTypeId: NotRequired[str | None]
    groupId: NotRequired[str | None]
    registrationId: NotRequired[int | None]
    messageTime: NotRequired[int]
    data: NotRequired[str | None]
    snr: NotRequired[float | None]
    downlink: NotRequired[bool]  # this callback answers the uplink's downlink request
    webhookId: NotRequired[str]  # a replay: the id of the first delivery
    scheduleFrom: NotRequired[int]  # a replay: when its retry schedule starts, ms
    request: NotRequired[Request]  # URL; a dead BATCH_URL delivery: the batch's request
    email: NotRequired[Email]      # EMAIL
    publish: NotRequired[Publish]  # MQTT, KAFKA, AZURE_EVENT_HUBS (topic "": the connection string's EntityPath)
    downlinkTemplate: NotRequired[str]  # DIRECT: the downlinkDataString, rendered for the transmitting station
    downlinkData: NotRequired[str]  # DIRECT, written by earlier versions: the rendered downlink


class InvalidDelivery(ValueError):
    """A `deliveries` record the worker cannot use; the message names the field and why."""


def delivery_id(record_id: str, callback_id: str | None, channel: str) -> str:
    """The stable id of the delivery of record `record_id` to a callback (or, with none, to `channel`)."""
    return f"{record_id}/{callback_id or channel.lower()}"


def new_delivery(record: Mapping[str, Any], *, callback_id: str | None, kind: str, channel: Channel, device_type_id: str,
                 message_id: str | None, origin_ms: int, created_ms: int, variables: dict[str, Any],
                 downlink: bool = False) -> Delivery:
    """The delivery of `record` (a message, DATA_ADVANCED or device event) to one callback, or, with
    no callback, to the DIRECT downlink. Its id is stable: `<record id>/<callback id or channel>`."""
    return {
        "id": delivery_id(record["id"], callback_id, channel), "callbackId": callback_id, "kind": kind,
        "channel": channel, "recordId": record["id"], "messageId": message_id,
        "device": record["device"], "deviceTypeId": device_type_id, "groupId": record.get("groupId"),
        "registrationId": record.get("registrationId"), "origin": origin_ms, "createdAt": created_ms,
        "messageTime": record["time"], "data": record.get("data"), "snr": record.get("snr"),
        "variables": variables, "downlink": downlink,
    }


def http_request(method: str, url: str, headers: dict[str, str], body: bytes | None,
                 content_type: str | None) -> Request:
    """A rendered request as a delivery carries it (the body as text)."""
    return {"method": method, "url": url, "headers": headers,
            "body": body.decode() if body is not None else None, "contentType": content_type}


def email(recipient: str, subject: str, body: str) -> Email:
    return {"recipient": recipient, "subject": subject, "body": body}


def replayed(delivery: Delivery, now_ms: int) -> Delivery:
    """The delivery sent again from the undelivered list: id `<first id>#r<n>`, the first id as
    `webhookId`, a retry schedule from `now_ms`."""
    original = delivery.get("webhookId") or delivery["id"].split("#r")[0]
    n = int(delivery["id"].split("#r")[1]) + 1 if "#r" in delivery["id"] else 1
    return {**delivery, "id": f"{original}#r{n}", "webhookId": original, "scheduleFrom": now_ms}


def delivery_key(delivery: Mapping[str, object]) -> bytes | None:
    """The record key: the callback for BATCH_URL (one worker batches a callback), else the device.
    None when the record lacks it (a broken record being dead-lettered)."""
    key = delivery.get("callbackId") if delivery.get("channel") == "BATCH_URL" else delivery.get("device")
    return key.encode() if isinstance(key, str) else None


# The record as JSON; orjson's own function, so that the hot path adds no Python call.
encode_delivery: Callable[[Delivery], bytes] = orjson.dumps


def decode_delivery(raw: bytes | None) -> Delivery:
    """The delivery in a record's value, or `InvalidDelivery` naming what makes it unusable."""
    try:
        obj = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise InvalidDelivery(f"delivery: not JSON: {exc}") from None
    problem = delivery_problem(obj)
    if problem is not None:
        raise InvalidDelivery(problem)
    return cast(Delivery, obj)


def schedule_start_ms(delivery: Delivery) -> float:
    """When a delivery's retry schedule started: a replay's own start, else when it was routed."""
    return delivery.get("scheduleFrom") or delivery["createdAt"]


def message_time_ms(delivery: Delivery) -> float | None:
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
    checks: list[tuple[str, tuple[type, ...], bool]] = [("id", (str,), False), ("device", (str,), False), ("kind", (str,), False),
              ("origin", (int, float), False), ("createdAt", (int, float), False),
              ("callbackId", (str,), channel == "DIRECT"), ("recordId", (str,), False),
              ("variables", (dict,), False),
              ("webhookId", (str,), True), ("downlink", (bool,), True),
              ("messageTime", (int, float), True), ("scheduleFrom", (int, float), True)]
    if channel == "URL":
        checks.append(("request", (dict,), False))
    elif channel == "EMAIL":
        checks.append(("email", (dict,), False))
    elif channel in PUBLISH_CHANNELS:
        checks.append(("publish", (dict,), False))
    elif channel == "DIRECT":
        checks.append(("downlinkTemplate", (str,), "downlinkData" in obj))
        checks.append(("downlinkData", (str,), "downlinkTemplate" in obj))
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
    elif channel in PUBLISH_CHANNELS:
        for field in ("topic", "body", "contentType"):
            problem = _wrong(obj["publish"], field, (str,))
            if problem:
                return f"publish.{problem}"
    return None
