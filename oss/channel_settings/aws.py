"""`channelSettings` of the AWS callbacks: AWS_IOT, KINESIS and SQS (workers.channels.aws and one module each).

    AWS_IOT: {"region": "eu-west-1", "accessKeyId": "AKIA...", "secretAccessKey": "********",
              "endpointUrl": "https://xxxx-ats.iot.eu-west-1.amazonaws.com", "topic": "sigfox/{device}", "qos": 1}
    KINESIS: {"region": "eu-west-1", "accessKeyId": "AKIA...", "secretAccessKey": "********",
              "streamName": "sigfox", "partitionKey": "{device}"}
    SQS:     {"region": "eu-west-1", "accessKeyId": "AKIA...", "secretAccessKey": "********",
              "queueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/sigfox.fifo"}

Every one: region (required), accessKeyId (required, 16 to 128 of A-Z 0-9), secretAccessKey (required,
write-only), sessionToken (optional, write-only: temporary credentials), endpointUrl (optional; https, plain
http only to an address the operator allows: checked with the destination rule in oss.checks). AWS_IOT: topic
(required, a template, no MQTT wildcard), qos 0 or 1 (default 1). KINESIS: streamName or streamArn (one
required), partitionKey (a template; default the device id). SQS: queueUrl (required).
"""
from __future__ import annotations

from typing import Any

from backhaul.aws_rules import ACCESS_KEY_ID, MAX_PARTITION_KEY, REGION, STREAM_ARN, STREAM_NAME, is_queue_url
from oss.channel_settings.base import Checker
from oss.channel_settings.mqtt import topic_errors
from oss.errors import FieldError

ACCOUNT = ("region", "accessKeyId", "secretAccessKey", "sessionToken", "endpointUrl")
AWS_IOT_KNOWN = (*ACCOUNT, "topic", "qos")
KINESIS_KNOWN = (*ACCOUNT, "streamName", "streamArn", "partitionKey")
SQS_KNOWN = (*ACCOUNT, "queueUrl")


def _account(settings: dict[str, Any], known: tuple[str, ...]) -> Checker:
    check = Checker(settings, known)
    region = check.text("region", required=True, max_length=32)
    if region is not None and not REGION.fullmatch(region):
        check.fail("region", "must be an AWS region such as eu-west-1")
    key_id = check.text("accessKeyId", required=True, max_length=128)
    if key_id is not None and not ACCESS_KEY_ID.fullmatch(key_id):
        check.fail("accessKeyId", "must be an AWS access key id (16 to 128 of A-Z 0-9)")
    check.text("secretAccessKey", required=True, max_length=1000)
    check.text("sessionToken", max_length=4000)
    url = check.text("endpointUrl", max_length=2000)
    if url is not None and not url.startswith(("https://", "http://")):
        check.fail("endpointUrl", "must be an https:// URL")
    return check


def aws_iot_errors(settings: dict[str, Any]) -> list[FieldError]:
    check = _account(settings, AWS_IOT_KNOWN)
    topic_errors(check)
    check.integer("qos", choices=(0, 1))
    return check.errors


def kinesis_errors(settings: dict[str, Any]) -> list[FieldError]:
    check = _account(settings, KINESIS_KNOWN)
    name = check.text("streamName", max_length=128)
    arn = check.text("streamArn", max_length=2048)
    if name is not None and not STREAM_NAME.fullmatch(name):
        check.fail("streamName", "must be 1 to 128 of A-Z a-z 0-9 _ . -")
    if arn is not None and not STREAM_ARN.fullmatch(arn):
        check.fail("streamArn", "must be a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)")
    if name is None and arn is None:
        check.fail("streamName", "is required (or streamArn)")
    elif name is not None and arn is not None:
        check.fail("streamArn", "give streamName or streamArn, not both")
    key = check.text("partitionKey", max_length=MAX_PARTITION_KEY)
    if key is not None and not key.strip():
        check.fail("partitionKey", "must not be empty (leave it out: the device id)")
    return check.errors


def sqs_errors(settings: dict[str, Any]) -> list[FieldError]:
    check = _account(settings, SQS_KNOWN)
    url = check.text("queueUrl", required=True, max_length=2048)
    if url is not None and not is_queue_url(url):
        check.fail("queueUrl", "must be a queue URL: https://sqs.REGION.amazonaws.com/ACCOUNT/NAME")
    return check.errors
