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

from typing import Any

from backhaul.event_hubs import USERNAME, parse_connection_string
from workers.channels.kafka import KafkaChannel, SettingsError, Target, bootstrap_servers


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

    def default_topic(self, settings: dict[str, Any]) -> str:
        entity = parse_connection_string(settings.get("connectionString")).entity_path
        if entity is None:
            raise SettingsError("channelSettings.topic: is required when the connection string has no EntityPath")
        return entity
