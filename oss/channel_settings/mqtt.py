"""`channelSettings` of an MQTT callback.

    {"host": "broker.example.com", "port": 8883, "tls": true, "caCertificate": "-----BEGIN CERTIFICATE-----...",
     "username": "backhaul", "password": "********", "topic": "sigfox/{deviceTypeId}/{device}",
     "qos": 1, "protocol": "5"}

host (required; a name or an IP address), port (default 8883 with TLS, 1883 without), tls (default
false), caCertificate (PEM; only with tls; default: the system's CAs), username, password (write-only;
needs a username), topic (required: a template of the callback's variables, no wildcard), qos 0 or 1
(default 1), protocol "3.1.1" or "5" (default "5"). Messages are never retained.
"""
from __future__ import annotations

from typing import Any

from oss.channel_settings.base import Checker
from oss.errors import FieldError

KNOWN = ("host", "port", "tls", "caCertificate", "username", "password", "topic", "qos", "protocol")
PROTOCOLS = ("3.1.1", "5")
MAX_TOPIC = 1000


def topic_errors(check: Checker, key: str = "topic") -> None:
    """An MQTT/Kafka-style topic template: not empty, no wildcard, no NUL."""
    topic = check.text(key, required=True, max_length=MAX_TOPIC)
    if topic is not None and ("+" in topic or "#" in topic):
        check.fail(key, "an MQTT topic to publish to cannot hold the wildcards + or #")


def connection_errors(check: Checker, *, required: bool, tls_default: bool) -> None:
    """host, port, tls and caCertificate: where a broker is and how to trust it."""
    check.host("host", required=required)
    check.integer("port", low=1, high=65535)
    tls = check.boolean("tls")
    ca = check.text("caCertificate", max_length=20000)
    if ca is not None:
        if not (tls_default if tls is None else tls):
            check.fail("caCertificate", "is only used with tls: true")
        elif "-----BEGIN CERTIFICATE-----" not in ca:
            check.fail("caCertificate", "must be PEM (-----BEGIN CERTIFICATE-----)")


def errors(settings: dict[str, Any]) -> list[FieldError]:
    check = Checker(settings, KNOWN)
    connection_errors(check, required=True, tls_default=False)
    username = check.text("username", max_length=1000)
    if check.text("password", max_length=1000) is not None and not username:
        check.fail("password", "needs a username (MQTT sends no password without a user name)")
    topic_errors(check)
    check.integer("qos", choices=(0, 1))
    check.choice("protocol", PROTOCOLS)
    return check.errors
