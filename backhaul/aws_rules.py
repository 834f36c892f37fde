"""What an AWS destination's settings must be: one rule for the API's check (oss.channel_settings.aws) and for
the channels that call AWS (workers.channels.aws): the region, the access key id, the service limits, and
where an `endpointUrl` (or an SQS queue URL) may point."""
from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from backhaul.destinations import DestinationPolicy, InvalidHost, literal_address

# Regions as AWS names them: us-east-1, eu-west-3, us-gov-west-1, cn-north-1, ap-southeast-7 ...
REGION: Final = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
ACCESS_KEY_ID: Final = re.compile(r"[A-Z0-9]{16,128}")
# Kinesis: a stream name, and a stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME).
STREAM_NAME: Final = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
STREAM_ARN: Final = re.compile(r"arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/[a-zA-Z0-9_.-]{1,128}")
# SQS: https://sqs.REGION.amazonaws.com/ACCOUNT/NAME (the last path segment is the queue's name).
QUEUE_NAME: Final = re.compile(r"[a-zA-Z0-9_-]{1,80}(\.fifo)?")
FIFO_SUFFIX: Final = ".fifo"
MAX_PARTITION_KEY: Final = 256  # Kinesis: 1 to 256 Unicode characters


def url_refusal(url: str, policy: DestinationPolicy) -> str | None:
    """Why an AWS endpoint URL (or queue URL) is refused, or None: https with a host that passes the
    destination rule; plain http only to an address the operator allowed (a local stand-in such as moto on
    127.0.0.1 in tests), never to a name or a public address, where the signed requests would travel in clear."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL with a host"
    if parts.username or parts.password:
        return "must not hold credentials (use accessKeyId and secretAccessKey)"
    if parts.scheme == "http":
        try:
            ip = literal_address(host)
        except InvalidHost as exc:
            return str(exc)
        if ip is None or not policy.allowed(ip):
            return "must be https (plain http only to an address the operator allows, e.g. a local test server)"
    return policy.check_url(url)


def queue_name(queue_url: str) -> str:
    """The queue's name: the last segment of its URL's path."""
    return urlsplit(queue_url).path.rstrip("/").rpartition("/")[2]


def is_queue_url(value: object) -> bool:
    """True for an SQS queue URL: http(s)://host/ACCOUNT/NAME. It names the queue; requests go to the
    client's endpoint (the region's, or `endpointUrl`), whose host is the one the destination rule checks."""
    if not isinstance(value, str) or len(value) > 2048:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return (parts.scheme in ("https", "http") and bool(parts.hostname) and parts.path.count("/") >= 2
            and QUEUE_NAME.fullmatch(queue_name(value)) is not None)
