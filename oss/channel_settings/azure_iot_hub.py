"""`channelSettings` of an AZURE_IOT_HUB callback (device-to-cloud messages over MQTT).

    {"connectionString": "********", "identity": "DEVICE", "tokenLifetime": 3600}

connectionString (required, write-only): the hub's, `HostName=HUB.azure-devices.net;
SharedAccessKeyName=POLICY;SharedAccessKey=KEY` (a policy with DeviceConnect), or one device's,
`HostName=..;DeviceId=DEV;SharedAccessKey=KEY`. identity (required): DEVICE (each Backhaul device
sends as the IoT Hub device of its own id; needs the hub's string) or DEVICE_TYPE (every device of
the type sends as one IoT Hub device: deviceId, or the device string's DeviceId). tokenLifetime:
seconds a SAS token is valid (300 to 604800, default 3600). host, port, tls (default true) and
caCertificate override where to connect: for tests against a local broker only. The parser and the
identity rules are the channel's (`backhaul.iot_hub`): what the API accepts the worker can use.
"""
from __future__ import annotations

from typing import Any

from backhaul.callback_secrets import MASK
from backhaul.iot_hub import (
    DEVICE_ID,
    IDENTITIES,
    TOKEN_LIFETIME_RANGE,
    identity_problem,
    parse_connection_string,
)
from backhaul.key_values import ConnectionStringError
from oss.channel_settings.base import Checker
from oss.channel_settings.mqtt import connection_errors
from oss.errors import FieldError

KNOWN = ("connectionString", "identity", "deviceId", "tokenLifetime", "host", "port", "tls", "caCertificate")


def errors(settings: dict[str, Any]) -> list[FieldError]:
    check = Checker(settings, KNOWN)
    text = check.text("connectionString", required=True, max_length=4000)
    identity = check.choice("identity", IDENTITIES, required=True)
    device_id = check.text("deviceId", max_length=128)
    if device_id is not None and not DEVICE_ID.fullmatch(device_id):
        check.fail("deviceId", "is not an IoT Hub device id (1-128 of A-Z a-z 0-9 -.%_*?!(),:=@$')")
    low, high = TOKEN_LIFETIME_RANGE
    check.integer("tokenLifetime", low=low, high=high)
    connection_errors(check, required=False, tls_default=True)
    if text is not None and text != MASK:  # a kept secret was checked when it was given
        try:
            hub = parse_connection_string(text)
        except ConnectionStringError as exc:
            field, _, why = str(exc).partition(": ")
            check.errors.append(FieldError(field, why))
        else:
            problem = identity_problem(hub, identity, device_id) if identity else None
            if problem is not None:
                check.errors.append(FieldError(*problem))
    elif identity == "DEVICE" and device_id is not None:
        check.fail("deviceId", "is only used with identity DEVICE_TYPE")
    return check.errors
