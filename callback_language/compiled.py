"""Compiled callbacks and grammars, cached per configuration row version.

Templates and grammars are checked when saved; compiling them again here is
only a cache fill, redone when the row's `updated_at` changes.
"""
from __future__ import annotations

import logging
from typing import Any

from backhaul.configview import ConfigView
from callback_language.bindings import SUBTYPE_KIND
from callback_language.grammar import FieldSpec, GrammarError, custom_data_variables, parse_grammar
from callback_language.templates import CallbackSpec, CompiledCallback, TemplateError, compile_callback

log = logging.getLogger(__name__)


def callback_spec(cb: dict[str, Any], kind: str) -> CallbackSpec:
    """A callbacks row as the templates see it (router, delivery workers, API checks)."""
    return CallbackSpec(
        id=cb["id"], kind=kind, channel=cb.get("channel") or "URL", url=cb.get("url") or "",
        http_method=cb.get("http_method") or "GET", headers=cb.get("headers") or {},
        body_template=cb.get("body_template"),
        content_type=cb.get("content_type"),
        line_pattern=cb.get("line_pattern"), recipient=cb.get("recipient"), subject=cb.get("subject"),
        message=cb.get("message"), settings=cb.get("channel_settings") or {},
    )


class CompiledCallbacks:
    def __init__(self, view: ConfigView) -> None:
        self.view = view
        self._callbacks: dict[str, tuple[Any, CompiledCallback | None]] = {}
        self._grammars: dict[tuple[str, str], tuple[FieldSpec, ...] | None] = {}

    def get(self, cb: dict[str, Any], kind: str | None = None) -> CompiledCallback | None:
        """The compiled form of a callbacks row, or None if it cannot compile."""
        version = (cb.get("updated_at"), kind)
        hit = self._callbacks.get(cb["id"])
        if hit is not None and hit[0] == version:
            return hit[1]
        try:
            compiled = compile_callback(callback_spec(cb, kind or SUBTYPE_KIND[cb["callback_subtype"]]))
        except TemplateError as exc:
            log.error("callback does not compile", extra={"callback": cb["id"], "error": str(exc)})
            compiled = None
        self._callbacks[cb["id"]] = (version, compiled)
        return compiled

    def custom_data(self, cb: dict[str, Any], device_type_id: str, data_hex: str) -> dict[str, str]:
        """`customData#` variables from the callback's grammar, else the device type's."""
        grammar = cb.get("payload_config")
        if not grammar:
            dtype = self.view.device_types.get(device_type_id) or {}
            if dtype.get("payload_type") != 3:
                return {}
            grammar = dtype.get("payload_config")
        if not grammar:
            return {}
        key = (cb["id"], grammar)
        if key not in self._grammars:
            try:
                self._grammars[key] = parse_grammar(grammar)
            except GrammarError as exc:
                log.error("grammar does not parse", extra={"callback": cb["id"], "error": str(exc)})
                self._grammars[key] = None
        fields = self._grammars[key]
        if not fields:
            return {}
        return custom_data_variables(fields, bytes.fromhex(data_hex))
