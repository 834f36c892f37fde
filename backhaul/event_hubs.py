"""Azure Event Hubs connection strings, parsed: what the API checks and the AZURE_EVENT_HUBS channel uses.

`Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=..;SharedAccessKey=..;EntityPath=hub`
(keys case-insensitive, in any order, a trailing `;` allowed; SharedAccessSignature instead of the key
name and key). Errors name `channelSettings.connectionString` and never repeat its values: the
string is a secret.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class ConnectionStringError(ValueError):
    """A connection string that cannot be used: `channelSettings.connectionString: why`."""


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
    """Parse an Event Hubs connection string; ConnectionStringError naming the part that is wrong. The
    message never repeats the string's values (it is a secret), only key names and the host."""
    if not isinstance(text, str) or not text.strip():
        raise ConnectionStringError(f"{FIELD}: is required")
    if any(ch in text for ch in "\r\n\x00"):
        raise ConnectionStringError(f"{FIELD}: must be one line (no CR, LF or NUL)")
    parts: dict[str, str] = {}
    for i, part in enumerate(p.strip() for p in text.strip().split(";")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip()
        canonical = next((k for k in KEYS if k.lower() == key.lower()), None)
        if not eq:
            raise ConnectionStringError(f"{FIELD}: part {i + 1} is not Key=Value")
        if canonical is None:
            raise ConnectionStringError(f"{FIELD}: unknown key {key[:40]!r}; expected {', '.join(KEYS)}")
        if canonical in parts:
            raise ConnectionStringError(f"{FIELD}: {canonical} is given twice")
        if not value.strip():
            raise ConnectionStringError(f"{FIELD}: {canonical} is empty")
        parts[canonical] = value.strip()
    endpoint = parts.get("Endpoint")
    if endpoint is None:
        raise ConnectionStringError(f"{FIELD}: Endpoint is required (Endpoint=sb://<namespace>.servicebus.windows.net/)")
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme.lower() != "sb":
        raise ConnectionStringError(f"{FIELD}: Endpoint must start with sb://")
    host = rest.split("/", 1)[0]
    if not _HOST.fullmatch(host):
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


