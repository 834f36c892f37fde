"""What a Kafka destination's settings must be: one rule for the API's check (oss.channel_settings) and
for the channels that produce to it (workers.channels.kafka, azure_event_hubs)."""
from __future__ import annotations

import re
from typing import Final

SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Kafka's own rule for topic names (Topic.java): legal characters, at most 249 of them.
TOPIC_NAME: Final = re.compile(r"[A-Za-z0-9._-]{1,249}")
_SERVER: Final = re.compile(r"(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")


def is_server(value: object) -> bool:
    """True when `value` is a bootstrap server, `host:port` (an IPv6 host in brackets), port 1..65535."""
    match = _SERVER.fullmatch(value) if isinstance(value, str) else None
    return match is not None and 1 <= int(match.group(2)) <= 65535
