"""Azure IoT Hub, as the AZURE_IOT_HUB channel speaks to it and the API checks its settings: the
connection string parsed, the identity a message is sent as, and the MQTT names of Microsoft's
"Communicate with an IoT hub using the MQTT protocol" (client id, user name, events topic).

Connection strings (`backhaul.key_values`): the hub's, `HostName=HUB.azure-devices.net;
SharedAccessKeyName=POLICY;SharedAccessKey=KEY` (a policy with DeviceConnect: it signs a token for
any device, with `skn=POLICY`), or one device's, `HostName=..;DeviceId=DEV;SharedAccessKey=KEY`.
Identities: DEVICE (each Backhaul device is the IoT Hub device of the same id; needs the hub's
string) or DEVICE_TYPE (one IoT Hub device for the whole type: the `deviceId` setting, or the device
string's DeviceId). Errors name the member and never repeat a secret.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from backhaul.event_hubs import DOMAIN_HOST
from backhaul.key_values import ConnectionStringError, parse_key_values
from backhaul.sas_token import SasKeyError, decode_key

FIELD = "channelSettings.connectionString"
KEYS = ("HostName", "SharedAccessKeyName", "DeviceId", "SharedAccessKey")
IDENTITIES = ("DEVICE", "DEVICE_TYPE")
API_VERSION = "2021-04-12"
PORT = 8883
TOKEN_LIFETIME_S = 3600
TOKEN_LIFETIME_RANGE = (300, 7 * 86400)
# IoT Hub device ids: up to 128 of ASCII letters, digits and - . % _ * ? ! ( ) , : = @ $ '
DEVICE_ID = re.compile(r"[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}")


class IotHubSettingsError(ValueError):
    """Settings the channel cannot use: `channelSettings.<member>: why`."""


@dataclass(frozen=True, repr=False)
class HubConnectionString:
    """An IoT Hub connection string, parsed: the hub's (`policy`) or a device's (`device_id`)."""

    host: str  # HUB.azure-devices.net, lower case
    key: str  # base64: a secret
    policy: str | None
    device_id: str | None

    def __repr__(self) -> str:
        return f"HubConnectionString(host={self.host!r}, policy={self.policy!r}, device_id={self.device_id!r})"


def parse_connection_string(text: Any) -> HubConnectionString:
    """Parse an IoT Hub connection string (the hub's or a device's); ConnectionStringError naming the part."""
    parts = parse_key_values(text, KEYS, FIELD)
    host = parts.get("HostName")
    if host is None:
        raise ConnectionStringError(f"{FIELD}: HostName is required (HostName=<hub>.azure-devices.net)")
    if not DOMAIN_HOST.fullmatch(host):
        raise ConnectionStringError(f"{FIELD}: HostName must be the hub's host name (<hub>.azure-devices.net)")
    if "SharedAccessKey" not in parts:
        raise ConnectionStringError(f"{FIELD}: SharedAccessKey is required")
    try:
        decode_key(parts["SharedAccessKey"])
    except SasKeyError as exc:
        raise ConnectionStringError(f"{FIELD}: {exc}") from None
    policy, device_id = parts.get("SharedAccessKeyName"), parts.get("DeviceId")
    if (policy is None) == (device_id is None):
        raise ConnectionStringError(f"{FIELD}: give SharedAccessKeyName (the hub's string, a policy with "
                                    "DeviceConnect) or DeviceId (a device's string), one of the two")
    if device_id is not None and not DEVICE_ID.fullmatch(device_id):
        raise ConnectionStringError(f"{FIELD}: DeviceId is not an IoT Hub device id (1-128 of A-Z a-z 0-9 -.%_*?!(),:=@$')")
    return HubConnectionString(host.lower(), parts["SharedAccessKey"], policy, device_id)


def identity_problem(hub: HubConnectionString, identity: Any, device_id: Any) -> tuple[str, str] | None:
    """(member, why) when the identity settings do not fit the connection string, else None."""
    if identity == "DEVICE":
        if hub.device_id is not None:
            return FIELD, "identity DEVICE needs the hub's connection string (SharedAccessKeyName), not a device's"
        if device_id is not None:
            return "channelSettings.deviceId", "is only used with identity DEVICE_TYPE"
    elif identity == "DEVICE_TYPE":
        if device_id is None and hub.device_id is None:
            return "channelSettings.deviceId", "is required with identity DEVICE_TYPE and the hub's connection string"
        if device_id is not None and hub.device_id is not None and device_id != hub.device_id:
            return "channelSettings.deviceId", "differs from the connection string's DeviceId"
    return None


@dataclass(frozen=True, repr=False)
class Identity:
    """The IoT Hub device one message is sent as, and how to sign its token."""

    host: str  # the hub's host name (in the user name and the token's resource)
    device_id: str
    key: str
    policy: str | None

    @property
    def username(self) -> str:
        return f"{self.host}/{self.device_id}/?api-version={API_VERSION}"

    @property
    def resource(self) -> str:
        """What the SAS token grants: the device's messages."""
        return f"{self.host}/devices/{self.device_id}"

    def __repr__(self) -> str:
        return f"Identity({self.username})"


def identity_of(settings: dict[str, Any], device: str) -> Identity:
    """The identity a message of `device` is sent as under these settings (secrets opened);
    ConnectionStringError / IotHubSettingsError naming the member."""
    hub = parse_connection_string(settings.get("connectionString"))
    mode, configured = settings.get("identity"), settings.get("deviceId")
    if mode not in IDENTITIES:
        raise IotHubSettingsError(f"channelSettings.identity: must be one of {', '.join(IDENTITIES)}")
    problem = identity_problem(hub, mode, configured)
    if problem is not None:
        raise IotHubSettingsError(f"{problem[0]}: {problem[1]}")
    device_id = device if mode == "DEVICE" else configured or hub.device_id
    if not isinstance(device_id, str) or not DEVICE_ID.fullmatch(device_id):
        raise IotHubSettingsError("channelSettings.deviceId: is not an IoT Hub device id")
    return Identity(hub.host, device_id, hub.key, hub.policy)


def events_topic(device_id: str, properties: list[tuple[str, str]]) -> str:
    """The device-to-cloud topic with its property bag, URL-encoded as Microsoft's SDKs do."""
    return f"devices/{device_id}/messages/events/{urlencode(properties, quote_via=quote)}"
