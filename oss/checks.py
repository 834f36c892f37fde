"""Semantic checks the schema cannot express: grammars, templates, destinations, downlink strings, keep-alive.

Grammars and callback templates are checked by the router's own parsers, so
the API accepts exactly what the stream can run. A callback's host is checked
against the destination rule (`backhaul.destinations`) as written; variables
are not allowed in a host (`router.templates`), so this is the host every
delivery uses, and each delivery checks again what it resolves to.
"""
from __future__ import annotations

from typing import Any

from backhaul.destinations import DestinationPolicy
from oss.errors import FieldError
from router.bindings import SUBTYPE_KIND
from router.compiled import callback_spec
from router.grammar import GrammarError, parse_grammar
from router.templates import TemplateError, validate_callback
from workers.downlink import render_direct


def grammar_errors(text: str | None, field: str = "payloadConfig") -> list[FieldError]:
    if not text:
        return [FieldError(field, "is required when payloadType is 3 (custom grammar)")]
    try:
        parse_grammar(text)
    except GrammarError as exc:
        where = f" (grammar field {exc.field!r})" if exc.field else ""
        return [FieldError(field, f"at character {exc.position}{where}: {exc.reason}")]
    return []


def callback_errors(row: dict[str, Any], destinations: DestinationPolicy) -> list[FieldError]:
    """Check a callbacks row (database column names) the way the router will compile it
    and the delivery worker will send it."""
    errors = []
    try:
        validate_callback(callback_spec(row, SUBTYPE_KIND[row["callback_subtype"]]))
    except TemplateError as exc:
        field = "callbackSubtype" if exc.field == "kind" else exc.field
        where = "" if exc.position is None else f"at character {exc.position}: "
        errors.append(FieldError(field, f"{where}{exc.reason}"))
    else:
        errors += destination_errors(row, destinations)
    if row.get("payload_config"):
        errors += grammar_errors(row["payload_config"])
    return errors


def destination_errors(row: dict[str, Any], destinations: DestinationPolicy) -> list[FieldError]:
    """The URL of a URL or BATCH_URL callback against the destination rule (EMAIL goes to the operator's relay)."""
    if row.get("channel") == "EMAIL" or not row.get("url"):
        return []
    refusal = destinations.check_url(row["url"])
    return [FieldError("url", refusal)] if refusal else []


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
