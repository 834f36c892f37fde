"""Azure Event Hubs connection strings, parsed: what the API checks and the AZURE_EVENT_HUBS channel uses.

`Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=..;SharedAccessKey=..;EntityPath=hub`
(parsed by `backhaul.key_values`; SharedAccessSignature instead of the key
name and key). Errors name `channelSettings.connectionString` and never repeat its values: the
string is a secret.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from backhaul.key_values import ConnectionStringError as ConnectionStringError  # re-exported for its callers
from backhaul.key_values import parse_key_values

FIELD = "channelSettings.connectionString"
PORT = 9093
USERNAME = "$ConnectionString"
KEYS = ("Endpoint", "SharedAccessKeyName", "SharedAccessKey", "SharedAccessSignature", "EntityPath")
DOMAIN_HOST = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+")
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
    """Parse an Event Hubs connection string; ConnectionStringError naming the part that is wrong. The
    message never repeats the string's values (it is a secret), only key names and the host."""
    parts = parse_key_values(text, KEYS, FIELD)
    endpoint = parts.get("Endpoint")
    if endpoint is None:
        raise ConnectionStringError(f"{FIELD}: Endpoint is required (Endpoint=sb://<namespace>.servicebus.windows.net/)")
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme.lower() != "sb":
        raise ConnectionStringError(f"{FIELD}: Endpoint must start with sb://")
    host = rest.split("/", 1)[0]
    if not DOMAIN_HOST.fullmatch(host):
        raise ConnectionStringError(f"{FIELD}: Endpoint must be sb://<namespace host>/ (a host name with a domain)")
    if "SharedAccessSignature" in parts:
        if "SharedAccessKey" in parts or "SharedAccessKeyName" in parts:
            raise ConnectionStringError(f"{FIELD}: give SharedAccessSignature or SharedAccessKeyName and SharedAccessKey, "
                                "not both")
    else:
        for key in ("SharedAccessKeyName", "SharedAccessKey"):
            if key not in parts:
                raise ConnectionStringError(f"{FIELD}: {key} is required")
    entity = parts.get("EntityPath")
    if entity is not None and not _ENTITY.fullmatch(entity):
        raise ConnectionStringError(f"{FIELD}: EntityPath must be an event hub name (letters, digits, '.', '_', '-')")
    return ConnectionString(host.lower(), parts.get("SharedAccessKeyName"), entity, text.strip())


