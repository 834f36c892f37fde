"""`channelSettings`: the settings of the channels beyond URL, BATCH_URL and EMAIL, one object per callback.

Each channel validates its object in a module of its own (`mqtt`, `kafka`, ...) and registers it
in `VALIDATORS`. Errors name the member: `channelSettings.topic: is required`. Secret members
(`backhaul.callback_secrets.SETTINGS_SECRETS`) are sealed, write-only and masked like URL
credentials (`oss.secret_fields`); a validator sees a kept secret as its mask.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oss.channel_settings import aws, azure_event_hubs, azure_iot_hub, kafka, mqtt
from oss.channel_settings.base import FIELD
from oss.errors import FieldError

Validator = Callable[[dict[str, Any]], list[FieldError]]
VALIDATORS: dict[str, Validator] = {"MQTT": mqtt.errors, "KAFKA": kafka.errors,
                                     "AZURE_EVENT_HUBS": azure_event_hubs.errors,
                                     "AWS_IOT": aws.aws_iot_errors, "KINESIS": aws.kinesis_errors, "SQS": aws.sqs_errors,
                                     "AZURE_IOT_HUB": azure_iot_hub.errors}
# The members each channel's settings may have (the console's form is checked against them).
MEMBERS: dict[str, tuple[str, ...]] = {"MQTT": mqtt.KNOWN, "KAFKA": kafka.KNOWN,
                                       "AZURE_EVENT_HUBS": azure_event_hubs.KNOWN, "AWS_IOT": aws.AWS_IOT_KNOWN,
                                       "KINESIS": aws.KINESIS_KNOWN, "SQS": aws.SQS_KNOWN,
                                       "AZURE_IOT_HUB": azure_iot_hub.KNOWN}


def settings_errors(channel: str | None, settings: Any) -> list[FieldError]:
    """What is wrong with `settings` as the `channelSettings` of a `channel` callback."""
    validator = VALIDATORS.get(channel or "URL")
    if validator is None:
        if settings is not None:
            return [FieldError(FIELD, f"only {', '.join(VALIDATORS)} callbacks have channel settings")]
        return []
    if settings is None:
        return [FieldError(FIELD, f"is required for {channel} callbacks")]
    if not isinstance(settings, dict):
        return [FieldError(FIELD, "must be of type object")]
    return validator(settings)
