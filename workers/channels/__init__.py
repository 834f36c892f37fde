"""Delivery channels, one module each, behind `Channel` (`base.py`); the delivery loop
(`workers/delivery.py`) finds a delivery's channel here by its `channel` field.

Adding a channel: a module with a `Channel` subclass, and one `register` line below.
"""
from __future__ import annotations

from workers.channels.aws_iot import AwsIot
from workers.channels.azure_event_hubs import AzureEventHubs
from workers.channels.azure_iot_hub import AzureIotHub
from workers.channels.base import Answered, BatchRequest, Channel, Context
from workers.channels.batch_url import BatchUrl
from workers.channels.direct import Direct
from workers.channels.email import Email
from workers.channels.kafka import KafkaChannel
from workers.channels.kinesis import Kinesis
from workers.channels.mqtt import Mqtt
from workers.channels.sqs import Sqs
from workers.channels.url import Url

__all__ = ["CHANNELS", "Answered", "BatchRequest", "Channel", "Context", "register"]

CHANNELS: dict[str, Channel] = {}


def register(channel: Channel) -> None:  # pragma: no mutate block (run at import: CHANNELS is tested)
    """Make `channel` the one that delivers the deliveries naming `channel.name`."""
    if channel.name in CHANNELS:
        raise ValueError(f"channel {channel.name}: registered twice")
    CHANNELS[channel.name] = channel


register(Url())
register(BatchUrl())
register(Email())
register(Direct())
register(Mqtt())
register(KafkaChannel())
register(AzureEventHubs())
register(AwsIot())
register(Kinesis())
register(Sqs())
register(AzureIotHub())
