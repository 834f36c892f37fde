"""The AWS_IOT channel: each delivery one `Publish` of AWS IoT Core's data plane (client 'iot-data', aiobotocore).

Settings (`channelSettings`, checked by `oss.channel_settings.aws`): the account (`workers.channels.aws`;
`endpointUrl` is the account's data endpoint, `https://xxxx-ats.iot.REGION.amazonaws.com`, as
`aws iot describe-endpoint --endpoint-type iot:Data-ATS` gives it), `topic` (a template of the callback's
variables rendered by the router, as MQTT's) and `qos` 0 or 1 (default 1). The payload is the body template
rendered; the stable message id (the same on every retry, replay and crash re-send) travels as the MQTT 5 user
property `message-id` (Publish's `userProperties`, which botocore sends JSON- and base64-encoded), with the
body's content type and, for JSON or text bodies, the UTF-8 payload format indicator.

No batching: the data plane publishes one message per request. Success is the service's HTTP 200 (status
200, answer `published`); a refusal is its error code and message in cbStatus.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from workers.attempt import Outcome
from workers.channels.aws import OK_STATUS, Account, AwsChannel
from workers.channels.base import Delivery

MESSAGE_ID = "message-id"


class AwsIot(AwsChannel):
    name = "AWS_IOT"
    service = "iot-data"

    def call(self, delivery: Delivery, settings: dict[str, Any], account: Account) -> Callable[[], Awaitable[Outcome]]:
        publish = delivery["publish"]
        message = {"topic": publish["topic"], "qos": int(settings.get("qos", 1)), "payload": publish["body"].encode(),
                   "contentType": publish["contentType"], "payloadFormatIndicator": "UTF8_DATA",
                   "userProperties": [{MESSAGE_ID: delivery.get("webhookId") or delivery["id"]}]}

        async def attempt() -> Outcome:
            client = await self.client(account)
            await client.publish(**message)
            return Outcome(OK_STATUS, "ok", None, 0.0, "published")
        return attempt
