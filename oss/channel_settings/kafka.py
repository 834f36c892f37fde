"""`channelSettings` of a KAFKA callback (produce to a customer's Kafka; the record key is the device id).

    {"bootstrapServers": ["kafka1.example.com:9093", "kafka2.example.com:9093"],
     "topic": "sigfox-{deviceTypeId}", "tls": true,
     "sasl": {"mechanism": "SCRAM-SHA-512", "username": "backhaul", "password": "********"}}

bootstrapServers (required: 1 to 20 `host:port`), topic (required: a template of the callback's
variables; rendered, it must be a legal Kafka topic name), tls (default false), sasl (optional:
mechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, username and password, all required; the password
is write-only).
"""
from __future__ import annotations

import re
from typing import Any

from backhaul.kafka_rules import SASL_MECHANISMS, is_server
from oss.channel_settings.base import Checker
from oss.errors import FieldError

KNOWN = ("bootstrapServers", "topic", "tls", "sasl")
SASL_KNOWN = ("mechanism", "username", "password")
MAX_SERVERS = 20
# Literal parts of a topic template: Kafka's legal characters, or a {variable}.
TOPIC_TEMPLATE = re.compile(r"^([A-Za-z0-9._-]|\{[^{}]*\})+$")


def errors(settings: dict[str, Any]) -> list[FieldError]:
    check = Checker(settings, KNOWN)
    servers = settings.get("bootstrapServers")
    if servers is None:
        check.fail("bootstrapServers", "is required")
    elif not isinstance(servers, list) or not servers or len(servers) > MAX_SERVERS:
        check.fail("bootstrapServers", f"must be a list of 1 to {MAX_SERVERS} host:port")
    else:
        for i, server in enumerate(servers):
            if not is_server(server):
                check.fail(f"bootstrapServers[{i}]", "must be host:port")
    topic = check.text("topic", required=True, max_length=249)
    if topic is not None and not TOPIC_TEMPLATE.match(topic):
        check.fail("topic", "a Kafka topic holds only letters, digits, '.', '_', '-' (and {variables})")
    check.boolean("tls")
    sasl = check.obj("sasl")
    if sasl is not None:
        inner = Checker(sasl, SASL_KNOWN, prefix=check.name("sasl"))
        inner.choice("mechanism", SASL_MECHANISMS, required=True)
        inner.text("username", required=True)
        inner.text("password", required=True)
        check.errors += inner.errors
    return check.errors
