"""The AZURE_EVENT_HUBS channel: the KAFKA channel pointed at an Event Hubs namespace's Kafka endpoint.

Settings (`channelSettings`): `connectionString` (secret) as the portal gives it,
`Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=..;SharedAccessKey=..;EntityPath=hub`,
and optionally `topic` (a template; required when the string has no EntityPath, which is the
default topic) and `bootstrapServers` (overrides `NS.servicebus.windows.net:9093`; with `tls`:
false, a plain SASL listener: for tests against a local Kafka only). What Event Hubs asks of a Kafka
client (Microsoft's "Event Hubs for Apache Kafka"): SASL PLAIN over TLS on port 9093, user name
`$ConnectionString`, password the whole connection string. Everything else is the KAFKA channel's
(`workers.channels.kafka`): one implementation, only this mapping differs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from workers.channels.kafka import KafkaChannel, SettingsError, Target, bootstrap_servers

FIELD = "channelSettings.connectionString"
PORT = 9093
USERNAME = "$ConnectionString"
KEYS = ("Endpoint", "SharedAccessKeyName", "SharedAccessKey", "SharedAccessSignature", "EntityPath")
_HOST = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+")
_ENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,255}")


@dataclass(frozen=True)
class ConnectionString:
    """An Event Hubs connection string, parsed. `text` is the whole string (the SASL password)."""

    namespace: str  # the host: NS.servicebus.windows.net
    key_name: str | None
    entity_path: str | None
    text: str

    def __repr__(self) -> str:
        return f"ConnectionString(namespace={self.namespace!r}, key_name={self.key_name!r}, " \
               f"entity_path={self.entity_path!r})"

    @property
    def bootstrap(self) -> str:
        return f"{self.namespace}:{PORT}"


def parse_connection_string(text: Any) -> ConnectionString:
    """Parse an Event Hubs connection string; SettingsError naming the part that is wrong. The
    message never repeats the string's values (it is a secret), only key names and the host."""
    if not isinstance(text, str) or not text.strip():
        raise SettingsError(f"{FIELD}: is required")
    if any(ch in text for ch in "\r\n\x00"):
        raise SettingsError(f"{FIELD}: must be one line (no CR, LF or NUL)")
    parts: dict[str, str] = {}
    for i, part in enumerate(p.strip() for p in text.strip().split(";")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip()
        canonical = next((k for k in KEYS if k.lower() == key.lower()), None)
        if not eq:
            raise SettingsError(f"{FIELD}: part {i + 1} is not Key=Value")
        if canonical is None:
            raise SettingsError(f"{FIELD}: unknown key {key[:40]!r}; expected {', '.join(KEYS)}")
        if canonical in parts:
            raise SettingsError(f"{FIELD}: {canonical} is given twice")
        if not value.strip():
            raise SettingsError(f"{FIELD}: {canonical} is empty")
        parts[canonical] = value.strip()
    endpoint = parts.get("Endpoint")
    if endpoint is None:
        raise SettingsError(f"{FIELD}: Endpoint is required (Endpoint=sb://<namespace>.servicebus.windows.net/)")
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme.lower() != "sb":
        raise SettingsError(f"{FIELD}: Endpoint must start with sb://")
    host = rest.split("/", 1)[0]
    if not _HOST.fullmatch(host):
        raise SettingsError(f"{FIELD}: Endpoint must be sb://<namespace host>/ (a host name with a domain)")
    if "SharedAccessSignature" in parts:
        if "SharedAccessKey" in parts or "SharedAccessKeyName" in parts:
            raise SettingsError(f"{FIELD}: give SharedAccessSignature or SharedAccessKeyName and SharedAccessKey, "
                                "not both")
    else:
        for key in ("SharedAccessKeyName", "SharedAccessKey"):
            if key not in parts:
                raise SettingsError(f"{FIELD}: {key} is required")
    entity = parts.get("EntityPath")
    if entity is not None and not _ENTITY.fullmatch(entity):
        raise SettingsError(f"{FIELD}: EntityPath must be an event hub name (letters, digits, '.', '_', '-')")
    return ConnectionString(host.lower(), parts.get("SharedAccessKeyName"), entity, text.strip())


def event_hubs_target(settings: dict[str, Any]) -> Target:
    """The Kafka target of an AZURE_EVENT_HUBS callback's settings (secrets already put back)."""
    parsed = parse_connection_string(settings.get("connectionString"))
    override = settings.get("bootstrapServers")
    bootstrap = bootstrap_servers(override) if override is not None else parsed.bootstrap
    tls = settings.get("tls") is not False
    return Target(bootstrap, USERNAME, parsed.text, "PLAIN", tls)


class AzureEventHubs(KafkaChannel):
    name = "AZURE_EVENT_HUBS"

    def target(self, settings: dict[str, Any]) -> Target:
        return event_hubs_target(settings)

    def topic_template(self, settings: dict[str, Any]) -> str:
        topic = settings.get("topic")
        if isinstance(topic, str) and topic:
            return topic
        entity = parse_connection_string(settings.get("connectionString")).entity_path
        if entity is None:
            raise SettingsError("channelSettings.topic: is required when the connection string has no EntityPath")
        return entity
