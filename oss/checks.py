"""Semantic checks the schema cannot express: grammars, templates, destinations, downlink strings, keep-alive.

Grammars and callback templates are checked by the parsers the router and
the delivery workers use (`callback_language`), so the API accepts exactly
what the stream can run. A callback's host is checked
against the destination rule (`backhaul.destinations`) as written; variables
are not allowed in a host (`callback_language.templates`), so this is the
host every delivery uses, and each delivery checks again what it resolves to.
"""
from __future__ import annotations

from typing import Any

from backhaul.aws_rules import url_refusal
from backhaul.callback_secrets import MASK
from backhaul.destinations import DestinationPolicy
from backhaul.event_hubs import ConnectionStringError, parse_connection_string
from backhaul.iot_hub import parse_connection_string as parse_hub_string
from backhaul.settings import settings
from callback_language.bindings import SUBTYPE_KIND
from callback_language.compiled import callback_spec
from callback_language.downlink import render_direct
from callback_language.grammar import GrammarError, parse_grammar
from callback_language.templates import TemplateError, validate_callback
from oss.channel_settings import settings_errors
from oss.errors import FieldError


def grammar_errors(text: str | None, field: str = "payloadConfig") -> list[FieldError]:
    if not text:
        return [FieldError(field, "is required when payloadType is 3 (custom grammar)")]
    limit = settings().max_template_bytes
    if _utf8_size(text) > limit:
        return [FieldError(field, f"must be at most {limit} bytes (UTF-8), got {_utf8_size(text)}")]
    try:
        parse_grammar(text)
    except GrammarError as exc:
        where = f" (grammar field {exc.field!r})" if exc.field else ""
        return [FieldError(field, f"at character {exc.position}{where}: {exc.reason}", position=exc.position)]
    return []


# A callback's templates (database column -> API field). Their total size bounds what the router
# renders for every message and the delivery record it publishes (the broker refuses records over ~1 MiB).
TEMPLATE_FIELDS = {"url": "url", "headers": "headers", "body_template": "bodyTemplate", "line_pattern": "linePattern",
                   "recipient": "recipient", "subject": "subject", "message": "message",
                   "payload_config": "payloadConfig"}


def _utf8_size(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_utf8_size(k) + _utf8_size(v) for k, v in value.items())
    return len(value.encode("utf-8", "surrogatepass")) if isinstance(value, str) else 0


def template_size_errors(row: dict[str, Any], limit: int | None = None) -> list[FieldError]:
    """Refuse templates that together exceed BACKHAUL_MAX_TEMPLATE_BYTES, naming the largest."""
    limit = settings().max_template_bytes if limit is None else limit
    sizes = {api: _utf8_size(row.get(column)) for column, api in TEMPLATE_FIELDS.items()}
    total = sum(sizes.values())
    if total <= limit:
        return []
    largest = max(sizes, key=sizes.__getitem__)
    return [FieldError(largest, f"a callback's templates must total at most {limit} bytes (UTF-8) over "
                                f"{', '.join(TEMPLATE_FIELDS.values())}; these total {total}, "
                                f"{largest} alone {sizes[largest]}")]


def callback_errors(row: dict[str, Any], destinations: DestinationPolicy) -> list[FieldError]:
    """Check a callbacks row (database column names) the way the router will compile it
    and the delivery worker will send it."""
    errors = template_size_errors(row)
    if errors:
        return errors  # not worth parsing
    errors = settings_errors(row.get("channel"), row.get("channel_settings"))
    if errors:
        return errors
    try:
        validate_callback(callback_spec(row, SUBTYPE_KIND[row["callback_subtype"]]))
    except TemplateError as exc:
        field = "callbackSubtype" if exc.field == "kind" else exc.field
        where = "" if exc.position is None else f"at character {exc.position}: "
        errors.append(FieldError(field, f"{where}{exc.reason}", position=exc.position))
    else:
        errors += destination_errors(row, destinations)
    if row.get("payload_config"):
        errors += grammar_errors(row["payload_config"])
    return errors


def destination_errors(row: dict[str, Any], destinations: DestinationPolicy) -> list[FieldError]:
    """The URL of a URL or BATCH_URL callback, the host of an MQTT one, against the destination rule (EMAIL
    goes to the operator's relay); the MQTT channel checks the addresses the host resolves to when it connects."""
    settings = row.get("channel_settings")
    if row.get("channel") == "MQTT" and isinstance(settings, dict) and isinstance(settings.get("host"), str):
        refusal = destinations.check_host(settings["host"])
        return [FieldError("channelSettings.host", refusal)] if refusal else []
    if row.get("channel") in ("KAFKA", "AZURE_EVENT_HUBS") and isinstance(settings, dict):
        return kafka_destination_errors(row["channel"], settings, destinations)
    if row.get("channel") == "AZURE_IOT_HUB" and isinstance(settings, dict):
        return iot_hub_destination_errors(settings, destinations)
    if row.get("channel") in ("AWS_IOT", "KINESIS", "SQS") and isinstance(settings, dict):
        refusal = url_refusal(settings["endpointUrl"], destinations) if settings.get("endpointUrl") else None
        return [FieldError("channelSettings.endpointUrl", refusal)] if refusal else []
    if row.get("channel") not in ("URL", "BATCH_URL", None) or not row.get("url"):
        return []
    refusal = destinations.check_url(row["url"])
    return [FieldError("url", refusal)] if refusal else []


def kafka_destination_errors(channel: str, settings: dict[str, Any],
                             destinations: DestinationPolicy) -> list[FieldError]:
    """The bootstrap hosts of a KAFKA or AZURE_EVENT_HUBS callback (for Event Hubs: the override, else the
    connection string's namespace) against the destination rule; the channel checks what they resolve to."""
    servers = settings.get("bootstrapServers")
    hosts = [(f"channelSettings.bootstrapServers[{i}]", server.rpartition(":")[0].strip("[]"))
             for i, server in enumerate(servers if isinstance(servers, list) else []) if isinstance(server, str)]
    text = settings.get("connectionString")
    if channel == "AZURE_EVENT_HUBS" and not hosts and isinstance(text, str) and text != MASK:
        try:
            hosts = [("channelSettings.connectionString", parse_connection_string(text).namespace)]
        except ConnectionStringError:
            return []  # refused by the validator already
    errors = []
    for field, host in hosts:
        refusal = destinations.check_host(host)
        if refusal:
            errors.append(FieldError(field, refusal))
    return errors


def iot_hub_destination_errors(settings: dict[str, Any], destinations: DestinationPolicy) -> list[FieldError]:
    """The host of an AZURE_IOT_HUB callback (the override, else the connection string's HostName) against
    the destination rule; the channel checks what it resolves to when it connects."""
    field, host = "channelSettings.host", settings.get("host")
    text = settings.get("connectionString")
    if not isinstance(host, str) and isinstance(text, str) and text != MASK:
        try:
            field, host = "channelSettings.connectionString", parse_hub_string(text).host
        except ConnectionStringError:
            return []  # refused by the validator already
    refusal = destinations.check_host(host) if isinstance(host, str) else None
    return [FieldError(field, refusal)] if refusal else []


def downlink_string_errors(text: str | None) -> list[FieldError]:
    if not text:
        return [FieldError("downlinkDataString", "is required when downlinkMode is 0 (DIRECT)")]
    try:
        render_direct(text, tap_id="1A2B", rssi=-120.0, time_s=1_700_000_000)
    except ValueError as exc:
        return [FieldError("downlinkDataString", str(exc).removeprefix("downlinkDataString: "))]
    return []


def keepalive_errors(value: int | None, minimum: int) -> list[FieldError]:
    if value is None or value == 0 or value >= minimum:
        return []
    return [FieldError("keepAlive", f"must be 0 (off) or at least {minimum} seconds, got {value}")]
