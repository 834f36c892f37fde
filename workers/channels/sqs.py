"""The SQS channel: each delivery one message of a `SendMessageBatch` to the callback's queue (aiobotocore).

Settings (`channelSettings`, checked by `oss.channel_settings.aws`): the account (`workers.channels.aws`) and
`queueUrl`. The message: body = the body template rendered by the router; message attributes `message-id`
(String: the delivery's stable id, the same on every retry, replay and crash re-send; receivers de-duplicate
on it) and `callback-type` (the callback kind: DATA_UPLINK, STATUS, ...). A FIFO queue (`.fifo`) gets
MessageGroupId = the device (its messages stay in order) and MessageDeduplicationId = the message id (SQS
drops a repeat within its 5-minute window).

Deliveries to one queue are gathered for a few ms into batches of at most 10 messages and 256 KiB
(`workers.channels.linger`); each delivery's attempt is its own entry's answer: SQS's `Successful` (status
200, answer `MessageId ...`) or `Failed` (its code and message) list, so only failed entries are retried.
A request that fails whole (credentials, a missing queue, the service unreachable) fails each of its entries
with the same text.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from backhaul.aws_rules import FIFO_SUFFIX, is_queue_url, queue_name
from workers.attempt import Outcome, failed
from workers.channels.aws import OK_STATUS, Account, AwsBatchChannel, SettingsError, entry_failure
from workers.channels.base import Delivery
from workers.channels.linger import Limits

MESSAGE_ID = "message-id"
CALLBACK_TYPE = "callback-type"
LIMITS = Limits(count=10, bytes=256 * 1024, entry_bytes=256 * 1024)


def message_size(entry: dict[str, Any]) -> int:
    """A message's size as SQS counts it: the body, and each attribute's name, type and value (UTF-8)."""
    size = len(entry["MessageBody"].encode())
    for name, value in entry["MessageAttributes"].items():
        size += len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
    return size


class Sqs(AwsBatchChannel):
    name = "SQS"
    service = "sqs"
    limits = LIMITS

    def call(self, delivery: Delivery, settings: dict[str, Any], account: Account) -> Callable[[], Awaitable[Outcome]]:
        queue = settings.get("queueUrl")
        if not isinstance(queue, str) or not is_queue_url(queue):
            raise SettingsError("channelSettings.queueUrl: is required (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)")
        message_id = delivery.get("webhookId") or delivery["id"]
        entry: dict[str, Any] = {
            "MessageBody": delivery["publish"]["body"],
            "MessageAttributes": {MESSAGE_ID: {"DataType": "String", "StringValue": message_id},
                                  CALLBACK_TYPE: {"DataType": "String", "StringValue": delivery["kind"]}}}
        if queue_name(queue).endswith(FIFO_SUFFIX):
            entry["MessageGroupId"] = delivery["device"]
            entry["MessageDeduplicationId"] = message_id[-128:]  # SQS's limit; the id's end is the distinct part
        size = message_size(entry)
        return lambda: self.batches.submit((account, queue), entry, size)

    async def flush(self, client: Any, where: str, entries: list[dict[str, Any]]) -> list[Outcome]:
        answer = await client.send_message_batch(QueueUrl=where, Entries=[{"Id": str(i), **e}
                                                                        for i, e in enumerate(entries)])
        done = {a["Id"]: Outcome(OK_STATUS, "ok", None, 0.0, f"MessageId {a['MessageId']}")
                for a in answer.get("Successful") or []}
        done.update({a["Id"]: entry_failure(a.get("Code") or "Unknown", a.get("Message"), 0.0)
                     for a in answer.get("Failed") or []})
        return [done.get(str(i)) or failed("SQS gave no answer for this message") for i in range(len(entries))]
