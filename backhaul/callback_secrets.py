"""What in a callback is secret, and how it is kept: sealed, apart from what the router reads.

A callback has three kinds of secret, each in a column of its own in
`callbacks`, sealed with the keyring (`backhaul.secretbox`):
- URL credentials: the `user:password@` of its URL, split off when it is
  saved. The stored (and published) `url` has none; `url_credentials` holds
  the userinfo as it was written (percent-encoded), sealed.
- Secret headers: those `is_secret_header` names (Authorization, Cookie, and
  every name holding auth, key, token, secret, signature, password, passwd,
  credential, session or cookie, in any case). They go to `secret_headers`
  (name -> sealed value); the other headers stay in `headers`, in clear.
- The signing secret (Standard Webhooks, `whsec_...`): `signing_secret`, sealed.
- The secret members of `channelSettings` (MQTT and SASL passwords, keys,
  connection strings: `SETTINGS_SECRETS`, dotted paths per channel). They are
  taken out of `channel_settings` into `channel_secrets` (path -> sealed);
  the worker puts them back, opened, at send time (`CallbackSecrets.settings_with`).

The configuration topic therefore carries only sealed values, and the router,
which renders requests from it, never sees a secret: the `deliveries` records
it writes hold none. The delivery worker opens them from its configuration
view at send time (`open_callback`). Secret header values may hold
`{variables}` like any header (Sigfox allows them), rendered there too.
"""
from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import asyncpg
import orjson

from backhaul.secretbox import Keyring, keyring

log = logging.getLogger(__name__)

SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "signature", "password", "passwd", "credential",
                       "session", "cookie")
SECRET_HEADER = re.compile("|".join(SECRET_HEADER_WORDS), re.IGNORECASE)
MASK = "********"
SIGNING_PREFIX = "whsec_"
# Values shorter than this are not scrubbed out of error texts (a one-letter user name would garble them).
_SCRUB_MIN = 4
# The secret members of each channel's `channelSettings` (dotted paths). The one declaration: the API's
# validators (oss/channel_settings) and the worker's channels read it from here.
SETTINGS_SECRETS: dict[str, tuple[str, ...]] = {
    "MQTT": ("password",),
    "KAFKA": ("sasl.password",),
    "AZURE_EVENT_HUBS": ("connectionString",),
    **dict.fromkeys(("AWS_IOT", "KINESIS", "SQS"), ("secretAccessKey", "sessionToken")),
    "AZURE_IOT_HUB": ("connectionString",),
}


def is_secret_header(name: str) -> bool:
    """Whether a header's value is a secret (see the module docstring for the rule)."""
    return SECRET_HEADER.search(name) is not None


def signing_key(secret: str) -> bytes:
    """The HMAC key of a signing secret: the base64-decoded text after `whsec_` (the
    Standard Webhooks form, padding optional), else the UTF-8 bytes of the secret."""
    if secret.startswith(SIGNING_PREFIX):
        encoded = secret[len(SIGNING_PREFIX):]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            raise ValueError("secret: text after 'whsec_' is not valid base64") from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ValueError("secret: must not be empty")
    return key


def split_headers(headers: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(clear headers, secret headers) of a header map."""
    clear: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for name, value in (headers or {}).items():
        (secret if is_secret_header(name) else clear)[name] = value
    return clear, secret


def authority_span(url: str) -> tuple[int, int]:
    """Start and end of the authority (`user:pass@host:port`), or (-1, -1) without `://`."""
    sep = url.find("://")
    if sep < 0:
        return -1, -1
    start = sep + 3
    end = len(url)
    for stop in "/?#":
        at = url.find(stop, start, end)
        if at >= 0:
            end = at
    return start, end


def split_userinfo(url: str) -> tuple[str, str | None]:
    """`url` without its `user:password@`, and that userinfo (None when there is none)."""
    start, end = authority_span(url)
    at = url.rfind("@", start, end) if start >= 0 else -1
    if at < 0:
        return url, None
    return url[:start] + url[at + 1:], url[start:at]


def redact_url(url: str) -> str:
    """`url` without its userinfo (`user:pass@`); safe to log."""
    return split_userinfo(url)[0]


def with_userinfo(url: str, userinfo: str) -> str:
    """`url` with `userinfo@` put in front of its host."""
    start, _ = authority_span(url)
    return url if start < 0 else f"{url[:start]}{userinfo}@{url[start:]}"


def basic_auth(userinfo: str) -> tuple[str, str]:
    """(user, password) of a URL's userinfo, percent-decoded."""
    user, _, password = userinfo.partition(":")
    return unquote(user), unquote(password)


def _pick(settings: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = settings
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return False, None
        node = node[key]
    return True, node


def split_settings(channel: str | None, settings: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings without their secret members, {dotted path: value} of those present) for `channel`."""
    clear: dict[str, Any] = _deep_copy(settings or {})
    secret: dict[str, Any] = {}
    for path in SETTINGS_SECRETS.get(channel or "", ()):
        found, value = _pick(clear, path)
        if found:
            *parents, last = path.split(".")
            node = clear
            for key in parents:
                node = node[key]
            del node[last]
            secret[path] = value
    return clear, secret


def join_settings(settings: Mapping[str, Any] | None, secret: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` with the secret members (dotted path -> value) put back in."""
    out: dict[str, Any] = _deep_copy(settings or {})
    for path, value in secret.items():
        *parents, last = path.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return out


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    return value


def seal_callback(row: Mapping[str, Any], box: Keyring | None = None) -> dict[str, Any]:
    """A callbacks row given with clear secrets, as it is stored: credentials split off the URL,
    secret headers apart, every secret sealed (with `box`, by default the process keyring, which
    is loaded only when there is something to seal). Columns the row does not have are left out."""
    def seal(value: str) -> str:
        return (box or keyring()).seal(value)

    out = dict(row)
    if out.get("url"):
        out["url"], userinfo = split_userinfo(out["url"])
        out["url_credentials"] = seal(userinfo) if userinfo else None
    if "headers" in out:
        out["headers"], secret = split_headers(out["headers"])
        out["secret_headers"] = {name: seal(value) for name, value in secret.items()}
    if out.get("signing_secret"):
        out["signing_secret"] = seal(out["signing_secret"])
    if out.get("channel_settings") is not None:
        out["channel_settings"], secret = split_settings(out.get("channel"), out["channel_settings"])
        out["channel_secrets"] = {path: seal(value) for path, value in secret.items() if value is not None}
    return out


def sealed_values(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """Every sealed value of a callbacks row (what opening it depends on: a cache key)."""
    headers = row.get("secret_headers") or {}
    settings = row.get("channel_secrets") or {}
    return (row.get("url_credentials"), tuple(sorted(headers.items())), row.get("signing_secret"),
            tuple(sorted(settings.items())))


@dataclass(frozen=True, repr=False)
class CallbackSecrets:
    """The opened secrets of one callback. Its repr names what is set, never a value."""

    basic_auth: tuple[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    signing_secret: str | None = None
    settings: dict[str, str] = field(default_factory=dict)  # channelSettings secrets: dotted path -> value

    def __repr__(self) -> str:
        return (f"CallbackSecrets(basic_auth={'set' if self.basic_auth else None}, "
                f"headers={sorted(self.headers)}, signing_secret={'set' if self.signing_secret else None}, "
                f"settings={sorted(self.settings)})")

    def settings_with(self, settings: Mapping[str, Any] | None) -> dict[str, Any]:
        """A callback's clear `channel_settings` with its secret members put back, opened."""
        return join_settings(settings, self.settings)

    def values(self) -> list[str]:
        """Every clear value that must not reach a record or a log, longest first."""
        out = list(self.headers.values())
        if self.basic_auth:
            user, password = self.basic_auth
            pair = f"{user}:{password}"
            out += [pair, base64.b64encode(pair.encode()).decode(), password]
        if self.signing_secret:
            out.append(self.signing_secret)
        out += self.settings.values()
        return sorted({v for v in out if len(v) >= _SCRUB_MIN}, key=len, reverse=True)

    def scrub(self, text: str | None) -> str | None:
        """`text` with every secret value masked (for error texts built from exceptions)."""
        if not text:
            return text
        for value in self.values():
            text = text.replace(value, MASK)
        return text


def open_callback(row: Mapping[str, Any], box: Keyring) -> CallbackSecrets:
    """The secrets of a callbacks row (as the config view holds it), opened."""
    userinfo = row.get("url_credentials")
    signing = row.get("signing_secret")
    return CallbackSecrets(
        basic_auth=basic_auth(box.open(userinfo)) if userinfo else None,
        headers={name: box.open(token) for name, token in (row.get("secret_headers") or {}).items()},
        signing_secret=box.open(signing) if signing else None,
        settings={path: box.open(token) for path, token in (row.get("channel_secrets") or {}).items()})


# Stored data --------------------------------------------------------------
async def seal_clear_rows(conn: asyncpg.Connection) -> None:
    """Migration 005's data step: seal the secrets earlier versions stored in clear.

    Callbacks get their URL credentials, secret headers and signing secret
    sealed; the deliveries kept for retry and replay lose their `auth` and
    secret headers (the worker adds them from the configuration at send time).
    The keyring is needed only when a callback has a secret to seal.
    """
    rows = await conn.fetch(
        "SELECT id, url, headers::text AS headers, signing_secret FROM callbacks "
        "WHERE signing_secret IS NOT NULL OR url ~ '://[^/?#]*@' "
        "OR EXISTS (SELECT 1 FROM jsonb_object_keys(headers) AS k WHERE k ~* $1)", SECRET_HEADER.pattern)
    for r in rows:
        sealed = seal_callback({"url": r["url"], "headers": orjson.loads(r["headers"]),
                                "signing_secret": r["signing_secret"]})
        await conn.execute(
            "UPDATE callbacks SET url = $2, url_credentials = $3, headers = $4::jsonb, secret_headers = $5::jsonb, "
            "signing_secret = $6 WHERE id = $1", r["id"], sealed["url"], sealed.get("url_credentials"),
            orjson.dumps(sealed["headers"]).decode(), orjson.dumps(sealed["secret_headers"]).decode(),
            sealed.get("signing_secret"))
    for table in ("delivery_retries", "undelivered_callbacks"):
        await conn.execute(
            f"UPDATE {table} SET delivery = jsonb_set(delivery #- '{{request,auth}}', '{{request,headers}}', "
            "COALESCE((SELECT jsonb_object_agg(k, v) FROM jsonb_each(delivery->'request'->'headers') AS h(k, v) "
            "WHERE k !~* $1), '{}'::jsonb)) WHERE jsonb_typeof(delivery->'request') = 'object' "
            "AND (delivery->'request' ? 'auth' OR (jsonb_typeof(delivery->'request'->'headers') = 'object' "
            "AND EXISTS (SELECT 1 FROM jsonb_object_keys(delivery->'request'->'headers') AS k WHERE k ~* $1)))",
            SECRET_HEADER.pattern)
    await conn.execute(
        "UPDATE undelivered_callbacks SET callback = jsonb_set(callback, '{headers}', "
        "COALESCE((SELECT jsonb_object_agg(k, v) FROM jsonb_each(callback->'headers') AS h(k, v) "
        "WHERE k !~* $1), '{}'::jsonb)) WHERE jsonb_typeof(callback->'headers') = 'object' "
        "AND EXISTS (SELECT 1 FROM jsonb_object_keys(callback->'headers') AS k WHERE k ~* $1)", SECRET_HEADER.pattern)
    if rows:
        log.info("callback secrets sealed", extra={"callbacks": len(rows)})


async def reseal_all(conn: asyncpg.Connection, box: Keyring) -> int:
    """Seal every stored secret again with the keyring's first key (rotation); returns the callbacks changed.

    One transaction: a value that no configured key opens stops it, naming the callback.
    """
    changed = 0
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT id, url_credentials, secret_headers::text AS secret_headers, signing_secret, "
            "channel_secrets::text AS channel_secrets FROM callbacks "
            "WHERE url_credentials IS NOT NULL OR signing_secret IS NOT NULL OR secret_headers <> '{}'::jsonb "
            "OR channel_secrets <> '{}'::jsonb "
            "ORDER BY id FOR UPDATE")
        for r in rows:
            try:
                headers = {n: box.reseal(t) for n, t in orjson.loads(r["secret_headers"]).items()}
                credentials = box.reseal(r["url_credentials"]) if r["url_credentials"] else None
                signing = box.reseal(r["signing_secret"]) if r["signing_secret"] else None
                settings = {p: box.reseal(t) for p, t in orjson.loads(r["channel_secrets"]).items()}
            except ValueError as exc:
                raise type(exc)(f"callback {r['id']}: {exc}") from None
            await conn.execute(
                "UPDATE callbacks SET url_credentials = $2, secret_headers = $3::jsonb, signing_secret = $4, "
                "channel_secrets = $5::jsonb WHERE id = $1", r["id"], credentials, orjson.dumps(headers).decode(),
                signing, orjson.dumps(settings).decode())
            changed += 1
    return changed
