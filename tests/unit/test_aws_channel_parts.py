"""The AWS channels' parts without a server: the endpoint rule, the account settings, the error text and class
of a failed call, the entries SQS and Kinesis are sent (FIFO group and deduplication id, message attributes,
partition key), the validators' errors."""
from __future__ import annotations

import asyncio

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from backhaul.aws_rules import is_queue_url, url_refusal
from backhaul.destinations import DestinationPolicy
from oss.channel_settings import settings_errors
from workers.channels.aws import Account, SettingsError, aws_error, entry_class
from workers.channels.kinesis import Kinesis
from workers.channels.sqs import Sqs, message_size

LOOPBACK = DestinationPolicy.parse("127.0.0.0/8")
SETTINGS = {"region": "eu-west-1", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s3cret-key"}


@pytest.mark.parametrize("url, why", [
    ("https://sqs.eu-west-1.amazonaws.com", None),
    ("http://127.0.0.1:5000", None),
    ("http://127.0.0.1:5000/x", None),
    ("http://localhost:5000", "must be https (plain http only to an address the operator allows, e.g. a local "
                              "test server)"),
    ("http://8.8.8.8", "must be https (plain http only to an address the operator allows, e.g. a local test server)"),
    ("https://10.0.0.1", "10.0.0.1 is a private address; callbacks may not target private networks (the operator "
                         "can allow it with BACKHAUL_CALLBACK_ALLOW_NETWORKS)"),
    ("ftp://example.com", "must be an https:// URL with a host"),
    ("https://", "must be an https:// URL with a host"),
    ("https://a:b@example.com", "must not hold credentials (use accessKeyId and secretAccessKey)"),
    ("https://example.com:99999", "not a valid URL"),
])
def test_the_endpoint_rule(url, why):
    assert url_refusal(url, LOOPBACK) == why


def test_queue_urls():
    assert is_queue_url("https://sqs.eu-west-1.amazonaws.com/123456789012/sigfox.fifo")
    assert is_queue_url("http://127.0.0.1:5000/123456789012/q-1_a")
    assert not is_queue_url("https://sqs.eu-west-1.amazonaws.com/sigfox")
    assert not is_queue_url("https://sqs.eu-west-1.amazonaws.com/1/bad name")
    assert not is_queue_url(12)


def test_the_account_names_a_missing_member_and_hides_its_secrets():
    account = Account.of({**SETTINGS, "sessionToken": "tok-123"})
    assert "s3cret" not in repr(account) and "tok-123" not in repr(account)
    assert account.key("sqs") == "aws-sqs://AKIAIOSFODNN7EXAMPLE@eu-west-1"
    for member in SETTINGS:
        with pytest.raises(SettingsError, match=f"^channelSettings.{member}: is required"):
            Account.of({k: v for k, v in SETTINGS.items() if k != member})


def client_error(code: str, message: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "SendMessageBatch")


def test_the_error_text_is_the_services_code_and_message_and_its_class_follows_the_code():
    assert aws_error(client_error("AccessDeniedException", "not allowed", 400)) == (
        "http_4xx", "AWS AccessDeniedException: not allowed")
    assert aws_error(client_error("ThrottlingException", "slow down", 400))[0] == "http_429"
    assert aws_error(client_error("InternalFailure", "oops", 500))[0] == "http_5xx"
    xml = ('<?xml version="1.0"?><ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code>'
           '<Message>The security token included in the request is invalid.</Message></Error></Errors></ErrorResponse>')
    assert aws_error(client_error("403", xml, 403)) == (
        "http_4xx", "AWS InvalidClientTokenId: The security token included in the request is invalid.")
    assert aws_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")) == (
        "connect", 'Could not connect to the endpoint URL: "http://127.0.0.1:9/"')
    assert aws_error(ReadTimeoutError(endpoint_url="http://x/"))[0] == "timeout"
    assert aws_error(asyncio.TimeoutError())[0] == "timeout"
    assert entry_class("ProvisionedThroughputExceededException") == "http_429"
    assert entry_class("InvalidParameterValue") == "other"


def delivery(**publish) -> dict:
    return {"id": "r1/cb", "kind": "DATA_UPLINK", "device": "00AB12CD",
            "publish": {"topic": "", "body": '{"a": 1}', "contentType": "application/json", **publish}}


def captured(channel):
    """The channel, and the (queue or stream, entry, size) its sends hand to its batches."""
    seen = []

    async def submit(target, entry, size):
        seen.append((target[1], entry, size))
    channel.batches.submit = submit
    return channel, seen


async def test_sqs_entries_carry_the_message_id_and_fifo_group_and_deduplication():
    channel, seen = captured(Sqs())
    account = Account.of(SETTINGS)
    fifo = "https://sqs.eu-west-1.amazonaws.com/1/q.fifo"
    await channel.call({**delivery(), "webhookId": "r0/cb"}, {"queueUrl": fifo}, account)()
    [(queue, entry, size)] = seen
    assert queue == fifo and entry["MessageGroupId"] == "00AB12CD" and entry["MessageDeduplicationId"] == "r0/cb"
    assert entry["MessageAttributes"]["message-id"] == {"DataType": "String", "StringValue": "r0/cb"}
    assert entry["MessageAttributes"]["callback-type"]["StringValue"] == "DATA_UPLINK"
    assert size == message_size(entry) == len('{"a": 1}') + len("message-id") + 6 + 5 + len("callback-type") + 6 + 11
    with pytest.raises(SettingsError, match="^channelSettings.queueUrl: is required"):
        channel.call(delivery(), {"queueUrl": "q"}, account)


async def test_kinesis_records_are_keyed_by_the_device_or_the_rendered_key():
    channel, seen = captured(Kinesis())
    account = Account.of(SETTINGS)
    await channel.call(delivery(), {"streamName": "s"}, account)()
    await channel.call(delivery(key="k-1"), {"streamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/s"}, account)()
    assert [(s, e["PartitionKey"], n) for s, e, n in seen] == [
        ("s", "00AB12CD", 8 + 8), ("arn:aws:kinesis:eu-west-1:123456789012:stream/s", "k-1", 8 + 3)]
    with pytest.raises(SettingsError, match="^channelSettings.partitionKey: rendered to 257 characters"):
        channel.call(delivery(key="k" * 257), {"streamName": "s"}, account)
    with pytest.raises(SettingsError, match="^channelSettings.streamName: is required"):
        channel.call(delivery(), {}, account)


def test_validators_name_the_member():
    def errors(channel, settings):
        return [(e.field, e.message) for e in settings_errors(channel, settings)]
    assert errors("SQS", {**SETTINGS, "queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q"}) == []
    assert errors("KINESIS", {**SETTINGS, "streamName": "s", "partitionKey": "{device}"}) == []
    assert errors("AWS_IOT", {**SETTINGS, "topic": "a/{device}"}) == []
    assert errors("SQS", {**SETTINGS, "queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q", "queue": "x"}) == [
        ("channelSettings.queue", "is not a member of these settings; expected one of region, accessKeyId, "
                                  "secretAccessKey, sessionToken, endpointUrl, queueUrl")]
    assert errors("KINESIS", {**SETTINGS, "streamName": "s", "streamArn": "arn:aws:kinesis:eu-west-1:1:stream/s"}) \
        == [("channelSettings.streamArn", "must be a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"),
            ("channelSettings.streamArn", "give streamName or streamArn, not both")]
    assert errors("AWS_IOT", {**SETTINGS, "endpointUrl": "iot.example.com", "topic": "t"}) == [
        ("channelSettings.endpointUrl", "must be an https:// URL")]
