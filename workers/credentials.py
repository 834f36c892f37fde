"""A callback's secrets at send time: opened from the configuration view, kept per sealed value.

The delivery worker is the one stage that opens callback secrets
(`backhaul.callback_secrets`): Basic auth from the URL credentials, the
secret headers, and the signing secret. They live in this process's memory
only and are never put in a record. Secret header values may hold
`{variables}` (as any header may): they are parsed here, once per sealed
value, and rendered with each delivery's variables.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backhaul.callback_secrets import CallbackSecrets, open_callback, sealed_values
from backhaul.secretbox import Keyring, keyring
from callback_language.bindings import SUBTYPE_KIND
from callback_language.templates import Template, compile_template


@dataclass(frozen=True, repr=False)
class SendSecrets:
    """What a request of one callback needs from its secrets."""

    opened: CallbackSecrets = field(default_factory=CallbackSecrets)
    header_templates: tuple[tuple[str, Template], ...] = ()

    def __repr__(self) -> str:
        return f"SendSecrets({self.opened!r})"

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        return self.opened.basic_auth

    @property
    def signing_secret(self) -> str | None:
        return self.opened.signing_secret

    def headers(self, variables: Mapping[str, Any]) -> dict[str, str]:
        """The secret headers of one request (TemplateError on a value that would inject a header)."""
        return {name: template.render_header(variables) for name, template in self.header_templates}

    def scrub(self, text: str | None) -> str | None:
        return self.opened.scrub(text)


NO_SECRETS = SendSecrets()


class CallbackCredentials:
    """Opened secrets by callback id, reopened when the callback's sealed values change."""

    def __init__(self, box: Keyring | None = None) -> None:
        self._box = box
        self._opened: dict[str, tuple[tuple[Any, ...], SendSecrets]] = {}

    def get(self, cb: Mapping[str, Any] | None) -> SendSecrets:
        """The secrets of a callbacks row; SealedSecretError if no key opens them, TemplateError if a
        secret header does not parse."""
        if not cb:
            return NO_SECRETS
        version = (*sealed_values(cb), cb.get("callback_subtype"))
        hit = self._opened.get(cb["id"])
        if hit is not None and hit[0] == version:
            return hit[1]
        if version[:4] == (None, (), None, ()):
            secrets = NO_SECRETS
        else:
            opened = open_callback(cb, self._box or keyring())
            subtype = cb.get("callback_subtype")
            kind = SUBTYPE_KIND.get(subtype, "DATA_UPLINK") if subtype is not None else "DATA_UPLINK"
            templates = tuple((name, compile_template(value, kind=kind, field=f"headers.{name}"))
                              for name, value in opened.headers.items())
            secrets = SendSecrets(opened, templates)
        self._opened[cb["id"]] = (version, secrets)
        return secrets
