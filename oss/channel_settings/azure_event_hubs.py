"""`channelSettings` of an AZURE_EVENT_HUBS callback (the Kafka channel on an Event Hubs namespace).

    {"connectionString": "********", "topic": "{deviceTypeId}"}

connectionString (required, write-only: the namespace's or the event hub's connection string as the
portal gives it, `Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=..;SharedAccessKey=..;
EntityPath=hub`), topic (a template of the callback's variables; default: the string's EntityPath,
required without one), bootstrapServers (["host:port"], overrides NS.servicebus.windows.net:9093)
and tls (default true): those two are for tests against a local Kafka. The parser is the channel's
(`backhaul.event_hubs`), so what the API accepts is what the worker can use.
"""
from __future__ import annotations

from typing import Any

from backhaul.callback_secrets import MASK
from backhaul.event_hubs import ConnectionStringError, parse_connection_string
from oss.channel_settings import kafka
from oss.channel_settings.base import Checker
from oss.errors import FieldError

KNOWN = ("connectionString", "topic", "bootstrapServers", "tls")


def errors(settings: dict[str, Any]) -> list[FieldError]:
    check = Checker(settings, KNOWN)
    text = check.text("connectionString", required=True, max_length=4000)
    entity = None
    if text is not None and text != MASK:  # a kept secret was checked when it was given
        try:
            entity = parse_connection_string(text).entity_path
        except ConnectionStringError as exc:
            field, _, why = str(exc).partition(": ")
            check.errors.append(FieldError(field, why))
    topic = check.text("topic", max_length=249)
    if topic is not None and not kafka.TOPIC_TEMPLATE.match(topic):
        check.fail("topic", "an event hub name holds only letters, digits, '.', '_', '-' (and {variables})")
    elif topic is None and text is not None and text != MASK and entity is None and not check.errors:
        check.fail("topic", "is required when the connection string has no EntityPath")
    if "bootstrapServers" in settings:
        check.errors += [e for e in kafka.errors({"bootstrapServers": settings["bootstrapServers"], "topic": "t"})]
    check.boolean("tls")
    return check.errors
