"""The secret fields of a callback in the API: masked when read, write-only, sealed when saved.

What is secret, and how it is stored, is `backhaul.callback_secrets`: URL
credentials (`user:password@`), secret headers (Authorization, API keys, ...)
and the signing secret.

Reading (the reference's callback shape, plus `signingSecret`):
- callers with `callbacks:write` see every secret masked: `url` as
  `https://********@host/path`, a secret header as `"Authorization": "********"`,
  `"signingSecret": "whsec_********"`;
- callers without it (read-only) see no trace of a secret: the URL without
  credentials, no secret header, no `signingSecret`.

Writing:
- create: `url` may carry `user:password@`, `headers` any header,
  `signingSecret` a `whsec_` secret (base64 of 24 to 64 random bytes) or
  `"generate"`; a generated secret is in the answer, that one time only.
- update: a secret left out is kept, and so is one given as its mask
  (`********@` in the URL, `"********"`, `"whsec_********"`), so that a
  read-edit-write round trip changes nothing; `null` removes it (a header
  `"X-Api-Key": null`, `"headers": null` for every header,
  `"signingSecret": null`, `"urlCredentials": null` for the URL's
  credentials); `"signingSecret": "generate"` makes a new one, answered once
  (200 instead of 204). A new `url` without credentials keeps the stored
  ones only on the same host and port: credentials never follow a callback
  to another host unless given again.
- refused: URL credentials together with an Authorization header (both set
  Authorization), and a mask where nothing is stored.

`channelSettings` (MQTT, KAFKA, ...: `oss.channel_settings`) follows the same
rules for its secret members (`SETTINGS_SECRETS`: `password`, `sasl.password`):
shown as "********" to writers, left out for readers; on update the object
given replaces the stored one, and a secret member left out or given as
"********" is kept, `null` removes it. A kept secret never follows the
settings to another destination (`host`, `bootstrapServers`): give it again.
"""
from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from backhaul.callback_secrets import (
    MASK,
    SETTINGS_SECRETS,
    SIGNING_PREFIX,
    authority_span,
    join_settings,
    signing_key,
    split_headers,
    split_settings,
    split_userinfo,
    with_userinfo,
)
from backhaul.secretbox import Keyring
from oss.errors import FieldError

SIGNING_MASK = SIGNING_PREFIX + MASK
GENERATE = "generate"
SIGNING_BYTES = (24, 64)
SIGNING_FORM = (f'must be "{GENERATE}" or whsec_ followed by the base64 of {SIGNING_BYTES[0]} to '
                f'{SIGNING_BYTES[1]} random bytes')


def generate_signing_secret() -> str:
    """A new Standard Webhooks secret: whsec_ + base64 of 32 random bytes."""
    return SIGNING_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def signing_secret_error(value: str) -> str | None:
    """Why `value` is not an acceptable signing secret, or None."""
    if not value.startswith(SIGNING_PREFIX):
        return SIGNING_FORM
    try:
        size = len(signing_key(value))
    except ValueError:
        return "the text after whsec_ is not valid base64"
    if not SIGNING_BYTES[0] <= size <= SIGNING_BYTES[1]:
        return f"{SIGNING_FORM}; this one holds {size} bytes"
    return None


@dataclass
class Secret:
    """One secret as it will be stored: kept sealed as it is, or a new clear value to seal."""

    sealed: str | None = None
    clear: str | None = None

    def checked_as(self) -> str:
        """The value template checks see: the new value, or the mask for a kept one."""
        return MASK if self.clear is None else self.clear

    def stored(self, box: Keyring) -> str | None:
        """The sealed value to store (None only for a stored secret that held none)."""
        return self.sealed if self.clear is None else box.seal(self.clear)


@dataclass
class SecretParts:
    """The secrets of a callback being saved."""

    credentials: Secret | None = None
    headers: dict[str, Secret] = field(default_factory=dict)
    signing: Secret | None = None
    generated: str | None = None  # a signing secret generated now, answered once
    errors: list[FieldError] = field(default_factory=list)
    settings: dict[str, Secret] = field(default_factory=dict)  # channelSettings secrets by dotted path

    @classmethod
    def stored(cls, row: Any) -> "SecretParts":
        """The secrets a callbacks row holds, all kept."""
        return cls(Secret(row["url_credentials"]) if row["url_credentials"] else None,
                   {name: Secret(token) for name, token in (row["secret_headers"] or {}).items()},
                   Secret(row["signing_secret"]) if row["signing_secret"] else None,
                   settings={path: Secret(token) for path, token in (_get(row, "channel_secrets") or {}).items()})

    def checked_settings(self, settings: Any) -> Any:
        """`channelSettings` as validators see it: clear members, secrets (a kept one as its mask)."""
        if not isinstance(settings, dict):
            return settings
        return join_settings(settings, {path: s.checked_as() for path, s in self.settings.items()})

    def checked_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """`row` as the template checks must see it: URL with its credentials, every header."""
        url = row.get("url")
        if url and self.credentials:
            url = with_userinfo(url, self.credentials.checked_as())
        headers = {**(row.get("headers") or {}),
                   **{name: s.checked_as() for name, s in self.headers.items()}}
        return {**row, "url": url, "headers": headers,
                "channel_settings": self.checked_settings(row.get("channel_settings"))}

    def conflicts(self, channel: str) -> list[FieldError]:
        """Combinations refused at save."""
        errors = list(self.errors)
        authorization = next((n for n in self.headers if n.lower() == "authorization"), None)
        if self.credentials and authorization:
            why = ("a callback cannot have both credentials in its URL and an Authorization header "
                   "(both set Authorization): keep one")
            errors += [FieldError("url", why), FieldError(f"headers.{authorization}", why)]
        if self.signing and channel not in ("URL", "BATCH_URL"):
            errors.append(FieldError("signingSecret", "only URL and BATCH_URL callbacks are signed"))
        return errors

    def columns(self, box: Keyring) -> dict[str, Any]:
        """The sealed columns of the callbacks row."""
        return {"url_credentials": self.credentials.stored(box) if self.credentials else None,
                "secret_headers": {name: s.stored(box) for name, s in self.headers.items()},
                "signing_secret": self.signing.stored(box) if self.signing else None,
                "channel_secrets": {path: s.stored(box) for path, s in self.settings.items()}}

    def take_signing(self, value: str | None, *, has_stored: bool) -> None:
        """Apply a given `signingSecret` (null, the mask, "generate" or a whsec_ secret)."""
        if value is None:
            self.signing = None
        elif value == SIGNING_MASK:
            if not has_stored:
                self.errors.append(FieldError("signingSecret", f"{SIGNING_MASK} stands for a stored secret; "
                                                               "there is none"))
        elif value == GENERATE:
            self.generated = generate_signing_secret()
            self.signing = Secret(clear=self.generated)
        else:
            error = signing_secret_error(value)
            if error:
                self.errors.append(FieldError("signingSecret", error))
            else:
                self.signing = Secret(clear=value)


def _masked_nothing(field_name: str) -> FieldError:
    return FieldError(field_name, f"{MASK} stands for a stored secret; there is none")


def _get(row: Any, key: str) -> Any:
    try:
        return row[key]
    except KeyError:
        return None


# The members naming a channel's destination: a kept secret does not follow them elsewhere.
DESTINATION_MEMBERS = ("host", "port", "bootstrapServers",
                       "endpointUrl", "region", "accessKeyId")  # AWS: a secret key belongs to its key id and endpoint


def _take_settings(parts: SecretParts, channel: str | None, settings: Any, *, stored: Any = None) -> Any:
    """The clear part of the `channelSettings` given; its secret members go to `parts.settings`
    (masks keep the stored ones, null and absence remove them, except that absence keeps them on
    the same destination on update, when `stored` is the stored clear settings)."""
    if not isinstance(settings, dict):
        parts.settings = {}
        return settings
    clear, given = split_settings(channel, settings)
    kept = parts.settings
    same_place = isinstance(stored, dict) and all(stored.get(k) == clear.get(k) for k in DESTINATION_MEMBERS)
    out: dict[str, Secret] = {}
    for path in SETTINGS_SECRETS.get(channel or "", ()):
        name = f"channelSettings.{path}"
        if path in given:
            value = given[path]
            if value == MASK:
                if path in kept:
                    out[path] = kept[path]
                else:
                    parts.errors.append(_masked_nothing(name))
            elif value is not None:
                out[path] = Secret(clear=value)
        elif path in kept:
            if same_place:
                out[path] = kept[path]
            else:
                parts.errors.append(FieldError(name, f"the destination changed: give it again, keep it ({MASK}) "
                                                     "or remove it (null)"))
    parts.settings = out
    return clear


def parts_for_create(body: dict[str, Any], row: dict[str, Any]) -> SecretParts:
    """The secrets of a new callback; `row` loses them (its url and headers are left clear)."""
    parts = SecretParts()
    if row.get("url"):
        row["url"], userinfo = split_userinfo(row["url"])
        if userinfo == MASK:
            parts.errors.append(_masked_nothing("url"))
        elif userinfo:
            parts.credentials = Secret(clear=userinfo)
    row["headers"], secret = split_headers(row.get("headers") or {})
    for name, value in secret.items():
        if value == MASK:
            parts.errors.append(_masked_nothing(f"headers.{name}"))
        else:
            parts.headers[name] = Secret(clear=value)
    if body.get("signingSecret") is not None:
        parts.take_signing(body["signingSecret"], has_stored=False)
    if row.get("channel_settings") is not None:
        row["channel_settings"] = _take_settings(parts, row.get("channel"), row["channel_settings"])
    return parts


def _host(url: str | None) -> str:
    if not url:
        return ""
    start, end = authority_span(url)
    return url[start:end].lower() if start >= 0 else ""


def parts_for_update(body: dict[str, Any], changes: dict[str, Any], current: Any) -> SecretParts:
    """The secrets after an update (see the module docstring); `changes` loses them."""
    parts = SecretParts.stored(current)
    if "url" in changes:
        changes["url"], userinfo = split_userinfo(changes["url"])
        if userinfo == MASK:
            if not parts.credentials:
                parts.errors.append(_masked_nothing("url"))
        elif userinfo:
            parts.credentials = Secret(clear=userinfo)
        elif parts.credentials and _host(changes["url"]) != _host(current["url"]):
            parts.errors.append(FieldError(
                "url", "the host changed and the URL carries no credentials: give them again (user:password@), "
                       f"keep them ({MASK}@) or remove them (urlCredentials: null)"))
    if "urlCredentials" in body and body["urlCredentials"] is None:
        parts.credentials = None
    if "headers" in body:
        given = body["headers"] or {}
        clear, secret = split_headers(given)
        changes["headers"] = {name: value for name, value in clear.items() if value is not None}
        kept = {name.lower(): (name, s) for name, s in parts.headers.items()} if body["headers"] is not None else {}
        headers: dict[str, Secret] = {}
        for name, value in secret.items():
            old = kept.pop(name.lower(), None)
            if value == MASK:
                if old is None:
                    parts.errors.append(_masked_nothing(f"headers.{name}"))
                else:
                    headers[old[0]] = old[1]
            elif value is not None:
                headers[name] = Secret(clear=value)
        headers.update(dict(kept.values()))
        parts.headers = headers
    if "signingSecret" in body:
        parts.take_signing(body["signingSecret"], has_stored=parts.signing is not None)
    channel = changes.get("channel", current["channel"])
    if "channelSettings" in body:
        changes["channel_settings"] = _take_settings(parts, channel, body["channelSettings"],
                                                     stored=_get(current, "channel_settings"))
    elif channel != current["channel"]:
        parts.settings = {}  # another channel: its settings must be given (checked with the rest)
        changes["channel_settings"] = None
    return parts


def shown(row: Any, *, writer: bool) -> dict[str, Any]:
    """`url`, `headers`, `signingSecret` and `channelSettings` of a callbacks row as a caller may see them."""
    url = row["url"]
    headers = dict(row["headers"] or {})
    if writer:
        if url and row["url_credentials"]:
            url = with_userinfo(url, MASK)
        headers.update({name: MASK for name in row["secret_headers"] or {}})
    settings = _get(row, "channel_settings")
    if settings is not None and writer:
        settings = join_settings(settings, {path: MASK for path in _get(row, "channel_secrets") or {}})
    return {"url": url, "headers": headers,
            "signingSecret": SIGNING_MASK if writer and row["signing_secret"] else None,
            "channelSettings": settings}
