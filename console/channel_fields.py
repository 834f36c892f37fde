"""The callback form's controls for `channelSettings`: one table, one entry per channel, one row a member.

A channel with settings (`oss.channel_settings.VALIDATORS`) gets its controls from `FIELDS` and
nothing else: adding a channel to the console is adding its entry. A row's `name` is the member's
dotted path (`sasl.password` is `password` inside `sasl`); whether it is secret comes from
`SETTINGS_SECRETS`, the one declaration the API and the workers read too. Controls are named
`channelSettings.<path>`, the field the API's errors name, so an error lands beside its control.

Secrets are shown as the API's mask; the mask sent back keeps the stored secret, a new text
replaces it, and an emptied control removes it (edit) or leaves it out (create).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from backhaul.callback_secrets import SETTINGS_SECRETS
from backhaul.kafka_rules import SASL_MECHANISMS
from oss.channel_settings.base import FIELD

Kind = Literal["text", "number", "checkbox", "choice", "textarea", "list"]


@dataclass(frozen=True)
class Field:
    """One member of a channel's settings as a control: `list` is a textarea of one item a line,
    `textarea` a multi-line text (PEM), `choice` a select of `choices` (numbers when they are)."""

    name: str
    label: str
    kind: Kind = "text"
    required: bool = False
    help: str = ""
    choices: tuple[str | int, ...] = ()

    @property
    def control(self) -> str:
        return f"{FIELD}.{self.name}"

    @property
    def element_id(self) -> str:
        return "cs-" + self.name.replace(".", "-")


KAFKA_SASL = (
    Field("sasl.mechanism", "SASL mechanism", "choice", choices=("", *SASL_MECHANISMS),
          help="empty: no SASL; then user name and password are required"),
    Field("sasl.username", "SASL user name"),
    Field("sasl.password", "SASL password"),
)
AWS_ACCOUNT = (
    Field("region", "Region", required=True, help="e.g. eu-west-1"),
    Field("accessKeyId", "Access key id", required=True),
    Field("secretAccessKey", "Secret access key", required=True),
    Field("sessionToken", "Session token", help="temporary credentials only"),
    Field("endpointUrl", "Endpoint URL", help="https://...; default the service's regional endpoint "
                                              "(IoT Core: the account's https://xxxx-ats.iot.REGION.amazonaws.com)"),
)
TOPIC_HELP = "a template of the callback's variables, e.g. sigfox/{deviceTypeId}/{device}"

FIELDS: dict[str, tuple[Field, ...]] = {
    "MQTT": (
        Field("host", "Broker host", required=True, help="a host name or an IP address, no scheme or port"),
        Field("port", "Port", "number", help="default 8883 with TLS, 1883 without"),
        Field("tls", "TLS", "checkbox"),
        Field("caCertificate", "CA certificate (PEM)", "textarea", help="only with TLS; default: the system's CAs"),
        Field("username", "User name"),
        Field("password", "Password", help="needs a user name"),
        Field("topic", "Topic", required=True, help=TOPIC_HELP + "; no wildcard"),
        Field("qos", "QoS", "choice", choices=(1, 0)),
        Field("protocol", "MQTT version", "choice", choices=("5", "3.1.1")),
    ),
    "KAFKA": (
        Field("bootstrapServers", "Bootstrap servers", "list", required=True, help="host:port, one a line"),
        Field("topic", "Topic", required=True, help=TOPIC_HELP.replace("/", "-")),
        Field("tls", "TLS", "checkbox"),
        *KAFKA_SASL,
    ),
    "AZURE_EVENT_HUBS": (
        Field("connectionString", "Connection string", required=True,
              help="Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=..;SharedAccessKey=..;EntityPath=hub"),
        Field("topic", "Event hub", help="default: the connection string's EntityPath; " + TOPIC_HELP),
        Field("bootstrapServers", "Bootstrap servers", "list", help="overrides NS.servicebus.windows.net:9093 "
                                                                      "(tests against a local Kafka)"),
        Field("tls", "TLS", "checkbox", help="on by default; off only for a local Kafka"),
    ),
    "AZURE_IOT_HUB": (
        Field("connectionString", "Connection string", required=True,
              help="the hub's (HostName=HUB.azure-devices.net;SharedAccessKeyName=..;SharedAccessKey=..), a policy "
                   "with DeviceConnect; or one device's (HostName=..;DeviceId=..;SharedAccessKey=..)"),
        Field("identity", "Identity", "choice", required=True, choices=("DEVICE", "DEVICE_TYPE"),
              help="DEVICE: each device sends as the IoT Hub device of its id; DEVICE_TYPE: one identity"),
        Field("deviceId", "IoT Hub device id", help="with DEVICE_TYPE and the hub's connection string"),
        Field("tokenLifetime", "SAS token lifetime (s)", "number", help="300 to 604800; default 3600"),
        Field("host", "Host", help="overrides the hub's host (tests against a local broker)"),
        Field("port", "Port", "number", help="default 8883"),
        Field("tls", "TLS", "checkbox", help="on by default; off only for a local broker"),
        Field("caCertificate", "CA certificate (PEM)", "textarea", help="only with TLS; default: the system's CAs"),
    ),
    **{channel: (*AWS_ACCOUNT, *own) for channel, own in (
        ("AWS_IOT", (Field("topic", "Topic", required=True, help=TOPIC_HELP + "; no wildcard"),
                     Field("qos", "QoS", "choice", choices=(1, 0)))),
        ("KINESIS", (Field("streamName", "Stream name", help="or the stream's ARN below"),
                     Field("streamArn", "Stream ARN", help="arn:aws:kinesis:REGION:ACCOUNT:stream/NAME"),
                     Field("partitionKey", "Partition key", help="a template; default the device id"))),
        ("SQS", (Field("queueUrl", "Queue URL", required=True,
                       help="https://sqs.REGION.amazonaws.com/ACCOUNT/NAME (.fifo: grouped by device)"),)))},
}
# Checkboxes whose member defaults to true: shown checked on a new callback.
DEFAULT_ON = {("AZURE_EVENT_HUBS", "tls"), ("AZURE_IOT_HUB", "tls")}
SETTINGS_CHANNELS = tuple(FIELDS)


def is_secret(channel: str, field: Field) -> bool:
    return field.name in SETTINGS_SECRETS.get(channel, ())


def fields_of(channel: str) -> tuple[Field, ...]:
    return FIELDS.get(channel, ())


def control_of(api_field: str) -> str:
    """The control an API error's field belongs to: `channelSettings.bootstrapServers[1]` is shown beside
    `channelSettings.bootstrapServers`."""
    return api_field.split("[", 1)[0]


def _member(form: Mapping[str, str], channel: str, field: Field, creating: bool) -> tuple[bool, Any]:
    """(present, value) of one member as the form gives it."""
    raw = form.get(field.control, "")
    if field.kind == "checkbox":
        return True, raw == "on"
    if is_secret(channel, field):
        return (True, raw) if raw else (not creating, None)  # emptied on edit: removed
    raw = raw.strip()
    if not raw:
        return False, None
    if field.kind == "list":
        return True, [line.strip() for line in raw.replace(",", "\n").split("\n") if line.strip()]
    if field.kind == "number" or (field.kind == "choice" and all(isinstance(c, int) for c in field.choices)):
        return True, int(raw) if raw.lstrip("-").isdigit() else raw  # not a number: the API's check names it
    return True, raw


def settings_body(form: Mapping[str, str], channel: str, *, creating: bool) -> dict[str, Any]:
    """The `channelSettings` object the form's controls describe (nested members grouped; a group
    with nothing in it left out)."""
    body: dict[str, Any] = {}
    for field in fields_of(channel):
        present, value = _member(form, channel, field, creating)
        if not present:
            continue
        *parents, leaf = field.name.split(".")
        if parents and value is None:
            continue  # an emptied secret inside a group: the group is replaced as a whole anyway
        target = body
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return body


def settings_values(channel: str, settings: Mapping[str, Any] | None) -> dict[str, str]:
    """The controls' values for stored settings as the API answered them (secrets already masked)."""
    values: dict[str, str] = {}
    for field in fields_of(channel):
        value: Any = settings or {}
        for part in field.name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if field.kind == "checkbox":
            values[field.control] = "on" if value else ""
        elif field.kind == "list":
            values[field.control] = "\n".join(map(str, value or ()))
        else:
            values[field.control] = "" if value is None else str(value)
    return values


def new_values(channel: str) -> dict[str, str]:
    """The controls' values on a new callback's form."""
    return {f.control: "on" for f in fields_of(channel) if (channel, f.name) in DEFAULT_ON}
