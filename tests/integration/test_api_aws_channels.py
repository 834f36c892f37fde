"""AWS_IOT, KINESIS and SQS callbacks through the API: the secret key and session token sealed at rest, masked
for writers, invisible to readers, kept by the mask on update; bad settings refused naming the member; an
endpointUrl the destination rule refuses (plain http to a name, a private address) refused at save."""
from __future__ import annotations

import orjson
import pytest

from backhaul.callback_secrets import MASK
from backhaul.secretbox import keyring
from tests.api_support import api, check  # noqa: F401  (fixture)
from tests.integration.test_api_callback_secrets import only, setup

pytestmark = pytest.mark.integration

SECRET, TOKEN = "aws/Secret+Key-8d41c0ffee", "session-token-71b2-IQoJb3JpZ2luX2Vj"
ACCOUNT = {"region": "eu-west-1", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": SECRET,
           "sessionToken": TOKEN}
OWN = {"AWS_IOT": {"topic": "sigfox/{device}", "qos": 1,
                   "endpointUrl": "https://a1b2c3-ats.iot.eu-west-1.amazonaws.com"},
       "KINESIS": {"streamName": "sigfox", "partitionKey": "{deviceTypeId}"},
       "SQS": {"queueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/sigfox.fifo"}}


def aws_callback(channel: str, **settings) -> dict:
    merged = {k: v for k, v in {**ACCOUNT, **OWN[channel], **settings}.items() if v is not None}
    return {"channel": channel, "callbackType": 0, "callbackSubtype": 2, "enabled": True,
            "bodyTemplate": "{device} {seqNumber}", "channelSettings": merged}


@pytest.mark.parametrize("channel", sorted(OWN))
async def test_secret_key_and_token_sealed_masked_write_only(api, channel):
    writer, reader, dtype = await setup(api, f"AWS secrets {channel}")
    cb = check(await writer.post(f"/device-types/{dtype}/callbacks", aws_callback(channel)), 201)["id"]
    row = dict(await api.pool.fetchrow("SELECT * FROM callbacks WHERE id = $1", cb))
    assert keyring().open(row["channel_secrets"]["secretAccessKey"]) == SECRET
    assert keyring().open(row["channel_secrets"]["sessionToken"]) == TOKEN
    raw = orjson.dumps({k: v for k, v in row.items() if k not in ("created_at", "updated_at")}).decode()
    assert SECRET not in raw and TOKEN not in raw, "sealed at rest"

    shown = only(await writer.get(f"/device-types/{dtype}/callbacks"), cb)["channelSettings"]
    seen = only(await reader.get(f"/device-types/{dtype}/callbacks"), cb)["channelSettings"]
    assert (shown["secretAccessKey"], shown["sessionToken"]) == (MASK, MASK)
    assert "secretAccessKey" not in seen and "sessionToken" not in seen
    assert shown["accessKeyId"] == ACCOUNT["accessKeyId"], "the key id is not a secret"

    check(await writer.put(f"/device-types/{dtype}/callbacks/{cb}", {"channelSettings": shown}), 204)
    row = dict(await api.pool.fetchrow("SELECT * FROM callbacks WHERE id = $1", cb))
    assert keyring().open(row["channel_secrets"]["secretAccessKey"]) == SECRET, "the mask keeps it"


@pytest.mark.parametrize("channel, settings, field, message", [
    ("SQS", {"region": None}, "channelSettings.region", "is required"),
    ("SQS", {"region": "Europe"}, "channelSettings.region", "must be an AWS region such as eu-west-1"),
    ("SQS", {"accessKeyId": "ak"}, "channelSettings.accessKeyId", "must be an AWS access key id (16 to 128 of A-Z 0-9)"),
    ("SQS", {"secretAccessKey": None}, "channelSettings.secretAccessKey", "is required"),
    ("SQS", {"queueUrl": "sigfox"}, "channelSettings.queueUrl",
     "must be a queue URL: https://sqs.REGION.amazonaws.com/ACCOUNT/NAME"),
    ("KINESIS", {"streamName": None}, "channelSettings.streamName", "is required (or streamArn)"),
    ("KINESIS", {"streamName": None, "streamArn": "arn:aws:s3:::bucket"}, "channelSettings.streamArn",
     "must be a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"),
    ("AWS_IOT", {"topic": "a/#"}, "channelSettings.topic", "an MQTT topic to publish to cannot hold the wildcards + or #"),
    ("AWS_IOT", {"qos": 2}, "channelSettings.qos", "must be one of 0, 1"),
    ("AWS_IOT", {"endpointUrl": "http://iot.example.com"}, "channelSettings.endpointUrl",
     "must be https (plain http only to an address the operator allows, e.g. a local test server)"),
    ("KINESIS", {"endpointUrl": "https://10.0.0.7"}, "channelSettings.endpointUrl",
     "10.0.0.7 is a private address; callbacks may not target private networks (the operator can allow it with "
     "BACKHAUL_CALLBACK_ALLOW_NETWORKS)"),
    ("SQS", {"endpointUrl": "https://user:pw@sqs.example.com"}, "channelSettings.endpointUrl",
     "must not hold credentials (use accessKeyId and secretAccessKey)"),
])
async def test_bad_settings_refused_naming_the_member(api, channel, settings, field, message):
    writer, _, dtype = await setup(api, f"AWS refused {channel} {field}")
    reply = await writer.post(f"/device-types/{dtype}/callbacks", aws_callback(channel, **settings))
    assert reply.status == 400, reply.body
    assert [(e["field"], e["message"]) for e in reply.body["errors"]] == [(field, message)]
    assert SECRET not in orjson.dumps(reply.body).decode()
