"""Callback templates: `{variable}` placeholders parsed once, rendered per delivery.

Grammar. A placeholder is `{name}`: a `{` immediately followed by a name
character (ASCII letter, digit, `_`, `#`, `-`), then the name, then `}`. Names
are `[A-Za-z][A-Za-z0-9_]*` or `customData#<field>` and must be allowed for the
callback kind (`callback_language.variables`). Names are case-sensitive. Any other brace is
an error ("unbalanced '{'", "unbalanced '}'", "empty variable name"), except in
JSON bodies, where a brace that does not start a placeholder is JSON structure
(`{"a": {}}` is fine). There is no escape for literal braces elsewhere.
Everything outside placeholders is kept verbatim. Error positions are 0-based
character offsets into the field's text.

Values. A missing variable or None renders as the empty string (`null` as a
JSON value). The text form of a value is: strings as they are, booleans as
`true`/`false`, lists and dicts (duplicates, computedLocation) as compact JSON,
anything else `str()`. Each place escapes that text its own way:

- URL: percent-encoded, `quote(text, safe='')`.
- header value: the text; CR, LF or NUL in the result raises TemplateError.
- form body: `quote_plus(text)` (application/x-www-form-urlencoded).
- JSON body: a placeholder inside a JSON string literal gets the text escaped as
  JSON string content; outside a string it gets a JSON value: None -> null,
  booleans -> true/false, numbers as numbers, lists/dicts as JSON, strings (and
  anything else) as JSON strings.
- plain text (text/plain bodies, e-mail): the text.

"Inside a JSON string literal" is decided at compile time by scanning the
literal text left to right: outside a string, `"` opens one; inside, `\\`
escapes the next character and an unescaped `"` closes it. A placeholder takes
the state at its position and does not change it (its value is escaped or is
a whole JSON value). A placeholder right after a backslash inside a JSON
string is refused.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Callable, Mapping
from urllib.parse import quote, quote_plus, urlsplit

import orjson

from backhaul.callback_secrets import authority_span, basic_auth, redact_url
from callback_language.variables import CUSTOM_DATA_PREFIX, EXTENSIONS, VARIABLES, allowed, sample

# Channels whose destination is in `channelSettings` (issue 14), and the members of it that are
# templates of the callback's variables, compiled and rendered as bodies are.
TEMPLATED_SETTINGS: dict[str, tuple[str, ...]] = {"MQTT": ("topic",), "KAFKA": ("topic",),
                                                 "AZURE_EVENT_HUBS": ("topic",),
                                                 "AWS_IOT": ("topic",), "KINESIS": ("partitionKey",), "SQS": (),
                                                 "AZURE_IOT_HUB": ()}  # IoT Hub's topic: the identity's
# Templated settings a channel may leave out (Event Hubs: the connection string's EntityPath; Kinesis: the device).
OPTIONAL_SETTINGS: dict[str, tuple[str, ...]] = {"AZURE_EVENT_HUBS": ("topic",), "KINESIS": ("partitionKey",)}
CHANNELS = ("URL", "BATCH_URL", "EMAIL", *TEMPLATED_SETTINGS)
METHODS = ("GET", "POST", "PUT")
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
TEXT = "text/plain"
CONTENT_TYPES = (FORM, JSON, TEXT)
BATCH_VARIABLE = "batch"

FORBIDDEN_HEADERS = frozenset({
    "host", "content-type", "content-length", "content-encoding", "transfer-encoding",
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "te",
    "trailer", "upgrade", "expect",
    "webhook-id", "webhook-timestamp", "webhook-signature",
})
"""Header names (lower case) a callback may not set: message framing and
hop-by-hop headers, the ones the platform sets itself, and the Standard
Webhooks signature headers. Authorization is allowed."""

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_#-")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:#[A-Za-z0-9_-]+)?")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_BREAK = re.compile(r"[\r\n\x00]")
_LINE_BREAK = re.compile(r"[\r\n]")
_URL_BAD = re.compile(r"[\x00-\x20\x7f]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`|~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_JSON_WS = " \t\r\n"
_OPTS = orjson.OPT_NON_STR_KEYS


class TemplateError(ValueError):
    """A template or callback that cannot be used; names the field, position and reason."""

    def __init__(self, field: str, position: int | None, reason: str) -> None:
        where = field if position is None else f"{field} at {position}"
        super().__init__(f"{where}: {reason}")
        self.field = field
        self.position = position
        self.reason = reason


def _text(value: Any) -> str:
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (dict, list, tuple)):
        return orjson.dumps(value, default=str, option=_OPTS).decode()
    return str(value)


def _url(value: Any) -> str:
    return quote(_text(value), safe="")  # pragma: no mutate (safe="XXXX": X is never quoted)


def _form(value: Any) -> str:
    return quote_plus(_text(value), safe="")  # pragma: no mutate (safe="" is quote_plus's default)


def _line(value: Any) -> str:
    return _LINE_BREAK.sub(" ", _text(value))


def _json_value(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, (str, float, dict, list, tuple)):
        return orjson.dumps(value, default=str, option=_OPTS).decode()
    return orjson.dumps(_text(value)).decode()


def _json_in_string(value: Any) -> str:
    return orjson.dumps(_text(value)).decode()[1:-1]


Segment = tuple[str, str | None, bool]


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text, each followed by a variable or None.

    `segments[i]` is (literal, variable name or None, inside a JSON string);
    `offsets[i]` is where segment i's literal starts in `text`.
    """

    text: str = dc_field(repr=False)
    kind: str
    field: str
    segments: tuple[Segment, ...] = dc_field(repr=False)
    offsets: tuple[int, ...] = dc_field(repr=False)
    variables: frozenset[str]

    def _render(self, variables: Mapping[str, Any], encode: Callable[[Any], str]) -> str:
        out = []
        for literal, name, _ in self.segments:
            out.append(literal)
            if name is not None:
                out.append(encode(variables.get(name)))
        return "".join(out)

    def render_url(self, variables: Mapping[str, Any]) -> str:
        """Values percent-encoded (`quote(safe='')`)."""
        return self._render(variables, _url)

    def render_header(self, variables: Mapping[str, Any]) -> str:
        """Values as text; a result holding CR, LF or NUL raises TemplateError."""
        value = self._render(variables, _text)
        if _HEADER_BREAK.search(value):
            raise TemplateError(self.field, None, "rendered value contains CR, LF or NUL; header injection refused")
        return value

    def render_form(self, variables: Mapping[str, Any]) -> str:
        """Values `quote_plus`-encoded for application/x-www-form-urlencoded bodies."""
        return self._render(variables, _form)

    def render_json(self, variables: Mapping[str, Any]) -> str:
        """Values escaped as JSON string content inside strings, JSON values outside."""
        out = []
        for literal, name, in_string in self.segments:
            out.append(literal)
            if name is not None:
                value = variables.get(name)
                out.append(_json_in_string(value) if in_string else _json_value(value))
        return "".join(out)

    def render_text(self, variables: Mapping[str, Any]) -> str:
        """Values as plain text."""
        return self._render(variables, _text)

    def render_line(self, variables: Mapping[str, Any]) -> str:
        """Plain text, with CR and LF inside values turned into spaces (one message, one line)."""
        return self._render(variables, _line)


def _check_name(name: str, kind: str, field: str, position: int, extra: frozenset[str]) -> None:
    if not _NAME.fullmatch(name):
        if name.startswith(CUSTOM_DATA_PREFIX):
            raise TemplateError(field, position, f"invalid variable name {name!r}: customData fields match [A-Za-z0-9_-]+")
        raise TemplateError(field, position, f"invalid variable name {name!r}")
    if name in extra or allowed(kind, name):
        return
    if name.startswith(CUSTOM_DATA_PREFIX):
        raise TemplateError(field, position, f"customData variables exist only for DATA_UPLINK, DATA_BIDIR "
                                             f"and DATA_ADVANCED callbacks, not {kind}")
    reason = f"unknown variable {name!r} for {kind} callbacks"
    names = sorted(VARIABLES[kind] | EXTENSIONS | extra)
    close = difflib.get_close_matches(name, names, n=1)  # pragma: no mutate (one read)
    if close:
        reason += f" (did you mean {close[0]!r}?)"
    raise TemplateError(field, position, reason)


def compile_template(text: str, *, kind: str, field: str, json_body: bool = False,
                     extra: frozenset[str] = frozenset()) -> Template:
    """Parse `text` once. `json_body` lets braces that start no placeholder be JSON
    structure; `extra` names variables allowed besides the kind's (e.g. `batch`)."""
    if kind not in VARIABLES:
        raise TemplateError("kind", None, f"unknown callback kind {kind!r}; expected one of {', '.join(VARIABLES)}")
    segments: list[Segment] = []
    offsets: list[int] = []
    in_string = escaped = False
    start = i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "{" and i + 1 < n and text[i + 1] in _NAME_CHARS:
            j = i + 1
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            if j == n:
                raise TemplateError(field, i, f"variable '{text[i:j]}' is not closed with '}}'")
            if text[j] != "}":
                raise TemplateError(field, j, f"unexpected {text[j]!r} in variable name")
            name = text[i + 1:j]
            _check_name(name, kind, field, i, extra)
            if json_body and escaped:
                raise TemplateError(field, i, "a variable cannot follow a backslash inside a JSON string")
            segments.append((text[start:i], name, in_string))
            offsets.append(start)
            escaped = False
            i = start = j + 1
            continue
        if not json_body and ch in "{}":
            hint = " (literal braces are only allowed in application/json bodies)"
            if ch == "}":
                raise TemplateError(field, i, "unbalanced '}'" + hint)
            if text[i + 1:i + 2] == "}":
                raise TemplateError(field, i, "empty variable name")
            raise TemplateError(field, i, "unbalanced '{' (a variable is written {name})" + hint)
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        i += 1
    segments.append((text[start:], None, in_string))
    offsets.append(start)
    names = frozenset(name for _, name, _ in segments if name is not None)
    return Template(text, kind, field, tuple(segments), tuple(offsets), names)


def _check_standalone(template: Template) -> None:
    text = template.text
    for (literal, name, in_string), offset in zip(template.segments, template.offsets, strict=False):
        if name is None or in_string:
            continue
        begin = offset + len(literal)
        end = begin + len(name) + 2
        before = text[:begin].rstrip(_JSON_WS)[-1:]
        after = text[end:].lstrip(_JSON_WS)[:1]
        if before not in ("", "[", ",", ":") or after not in ("", "]", ",", "}"):
            raise TemplateError(template.field, begin, f"variable {{{name}}} outside a JSON string must stand "
                                                       f"alone as a JSON value")


def validate_json_body(text: str, kind: str) -> Template:
    """Compile a JSON body and check it is valid JSON whatever the values.

    Placeholders outside strings must stand alone as JSON values (after `[`,
    `,`, `:` or at the start; before `,`, `]`, `}` or at the end); then every
    placeholder gets a sample value of its type and the result must parse.
    """
    template = compile_template(text, kind=kind, field="bodyTemplate", json_body=True)
    _check_standalone(template)
    pieces: list[tuple[int, int, bool]] = []
    out: list[str] = []
    size = 0
    for (literal, name, in_string), offset in zip(template.segments, template.offsets, strict=False):
        pieces.append((size, offset, False))
        out.append(literal)
        size += len(literal)
        if name is not None:
            value = sample(name)
            rendered = _json_in_string(value) if in_string else _json_value(value)
            pieces.append((size, offset + len(literal), True))
            out.append(rendered)
            size += len(rendered)
    try:
        orjson.loads("".join(out))
    except orjson.JSONDecodeError as exc:
        position = len(text)
        for rendered_at, template_at, is_variable in pieces:
            if rendered_at > exc.pos or exc.pos >= size:
                break
            position = template_at if is_variable else template_at + exc.pos - rendered_at
        raise TemplateError("bodyTemplate", min(position, len(text)),
                            f"body is not valid JSON after substitution: {exc.msg}") from None
    return template


@dataclass(repr=False)
class CallbackSpec:
    """A callback as its templates see it.

    `content_type` None means the channel's default: application/x-www-form-urlencoded
    for URL, text/plain for BATCH_URL. The repr hides credentials and header values.
    """

    id: str
    kind: str
    channel: str = "URL"
    url: str | None = None
    http_method: str | None = "POST"
    headers: dict[str, str] = dc_field(default_factory=dict)
    body_template: str | None = None
    content_type: str | None = None
    line_pattern: str | None = None
    recipient: str | None = None
    subject: str | None = None
    message: str | None = None
    settings: dict[str, Any] = dc_field(default_factory=dict)  # channelSettings, secrets left out

    def __repr__(self) -> str:
        url = redact_url(self.url) if self.url else None
        return (f"CallbackSpec(id={self.id!r}, kind={self.kind!r}, channel={self.channel!r}, url={url!r}, "
                f"http_method={self.http_method!r}, headers={sorted(self.headers)!r})")


@dataclass(frozen=True, slots=True)
class CompiledCallback:
    """A validated callback with every template parsed; build with compile_callback."""

    id: str
    kind: str
    channel: str
    method: str | None
    url: Template | None
    headers: tuple[tuple[str, Template], ...] = dc_field(repr=False)
    body: Template | None = dc_field(repr=False)
    content_type: str | None
    basic_auth: tuple[str, str] | None = dc_field(repr=False)
    line: Template | None = dc_field(repr=False)
    recipient: Template | None = dc_field(repr=False)
    subject: Template | None = dc_field(repr=False)
    message: Template | None = dc_field(repr=False)
    settings: tuple[tuple[str, Template], ...] = dc_field(default=(), repr=False)  # templated channelSettings

    def setting(self, name: str) -> Template:
        """The compiled template of a `channelSettings` member (`topic`)."""
        return next(template for key, template in self.settings if key == name)

    @property
    def variables(self) -> frozenset[str]:
        """Every message variable any part of this callback uses."""
        parts = [self.url, self.body, self.line, self.recipient, self.subject, self.message]
        parts.extend(template for _, template in self.headers)
        parts.extend(template for _, template in self.settings)
        names = frozenset().union(*(p.variables for p in parts if p is not None))
        return names - {BATCH_VARIABLE} if self.channel == "BATCH_URL" else names


@dataclass(slots=True)
class RenderedRequest:
    """One HTTP request ready to send. `url` never holds credentials."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    content_type: str | None
    basic_auth: tuple[str, str] | None

    def __repr__(self) -> str:
        size = None if self.body is None else len(self.body)
        return (f"RenderedRequest(method={self.method!r}, url={self.url!r}, headers={sorted(self.headers)!r}, "
                f"body_bytes={size}, content_type={self.content_type!r}, "
                f"basic_auth={'set' if self.basic_auth else None})")


def _split_url(text: str | None) -> tuple[str, tuple[str, str] | None]:
    """Check an absolute http(s) URL with a literal authority; return it without
    userinfo, and the userinfo as basic-auth credentials."""
    if not text:
        raise TemplateError("url", None, "required")
    bad = _URL_BAD.search(text)
    if bad:
        raise TemplateError("url", bad.start(), "whitespace and control characters are not allowed in a URL")
    start, end = authority_span(text)
    if start < 3 or not _SCHEME.fullmatch(text[:start - 3]):
        raise TemplateError("url", 0, "must be an absolute http:// or https:// URL")
    scheme = text[:start - 3].lower()
    if scheme not in ("http", "https"):
        raise TemplateError("url", 0, f"scheme must be http or https, got {scheme!r}")
    authority = text[start:end]
    for brace in "{}":
        if brace in authority:
            raise TemplateError("url", start + authority.index(brace),
                                "variables are not allowed in the credentials or host")
    userinfo, at, hostport = authority.rpartition("@")
    host_at = start + len(userinfo) + len(at)
    try:
        parts = urlsplit(f"{scheme}://{hostport}")
        host = parts.hostname
        _ = parts.port  # reading it validates the port (ValueError when out of range)
    except ValueError:
        raise TemplateError("url", host_at, "invalid host or port") from None
    if not host:
        raise TemplateError("url", host_at, "host missing")
    redacted = text[:start] + text[host_at:]
    if not userinfo:
        return redacted, None
    return redacted, basic_auth(userinfo)


def _header_templates(spec: CallbackSpec, batch: bool) -> tuple[tuple[str, Template], ...]:
    seen: set[str] = set()
    out = []
    for name, value in (spec.headers or {}).items():
        if not isinstance(name, str) or "{" in name or "}" in name:
            raise TemplateError("headers", None, f"header names cannot contain variables: {name!r}")
        if not _TOKEN.fullmatch(name):
            raise TemplateError("headers", None, f"invalid header name {name!r}")
        field = f"headers.{name}"
        if name.lower() in FORBIDDEN_HEADERS:
            raise TemplateError(field, None, f"{name} is a standard header and cannot be set by a callback")
        if name.lower() in seen:
            raise TemplateError(field, None, "duplicate header (names are case-insensitive)")
        seen.add(name.lower())
        if not isinstance(value, str):
            raise TemplateError(field, None, "value must be a string")
        bad = _HEADER_BREAK.search(value)
        if bad:
            raise TemplateError(field, bad.start(), "CR, LF and NUL are not allowed in header values")
        template = compile_template(value, kind=spec.kind, field=field)
        if batch and template.variables:
            at = next(o + len(lit) for (lit, n, _), o in zip(template.segments, template.offsets, strict=False) if n)
            raise TemplateError(field, at, "BATCH_URL header values cannot contain variables "
                                           "(one request carries many messages)")
        out.append((name, template))
    return tuple(out)


def _content_type(spec: CallbackSpec) -> str:
    if spec.content_type is None or spec.content_type == "":
        return TEXT if spec.channel == "BATCH_URL" else FORM
    value = spec.content_type.strip().lower()
    if value not in CONTENT_TYPES:
        raise TemplateError("contentType", None, f"must be one of {', '.join(CONTENT_TYPES)}, got {spec.content_type!r}")
    return value


def _compile_email(spec: CallbackSpec) -> CompiledCallback:
    if not spec.recipient:
        raise TemplateError("recipient", None, "required for EMAIL callbacks")
    recipient = compile_template(spec.recipient, kind=spec.kind, field="recipient")
    probe = recipient.render_text({name: sample(name) for name in recipient.variables}).strip()
    if not _EMAIL.fullmatch(probe):
        raise TemplateError("recipient", None, f"not an e-mail address: {spec.recipient!r}")
    if not spec.subject:
        raise TemplateError("subject", None, "required for EMAIL callbacks")
    bad = _HEADER_BREAK.search(spec.subject)
    if bad:
        raise TemplateError("subject", bad.start(), "CR, LF and NUL are not allowed in a subject")
    subject = compile_template(spec.subject, kind=spec.kind, field="subject")
    if not spec.message:
        raise TemplateError("message", None, "required for EMAIL callbacks")
    message = compile_template(spec.message, kind=spec.kind, field="message")
    return CompiledCallback(spec.id, spec.kind, "EMAIL", None, None, (), None, None, None, None,
                            recipient, subject, message)


def _compile_with_settings(spec: CallbackSpec) -> CompiledCallback:
    """MQTT, KAFKA, ...: a body template (JSON checked as URL bodies are with application/json) and the
    channel's templated settings (`channelSettings.topic`), which may not hold CR, LF or NUL."""
    content_type = TEXT if not spec.content_type else _content_type(spec)
    if not spec.body_template:
        raise TemplateError("bodyTemplate", None, f"required for {spec.channel} callbacks")
    if content_type == JSON:
        body = validate_json_body(spec.body_template, spec.kind)
    else:
        body = compile_template(spec.body_template, kind=spec.kind, field="bodyTemplate")
    settings = []
    for name in TEMPLATED_SETTINGS[spec.channel]:
        field = f"channelSettings.{name}"
        text = spec.settings.get(name)
        if text is None and name in OPTIONAL_SETTINGS.get(spec.channel, ()):
            continue
        if not isinstance(text, str) or not text:
            raise TemplateError(field, None, f"required for {spec.channel} callbacks")
        bad = _HEADER_BREAK.search(text)
        if bad:
            raise TemplateError(field, bad.start(), "CR, LF and NUL are not allowed")
        settings.append((name, compile_template(text, kind=spec.kind, field=field)))
    return CompiledCallback(spec.id, spec.kind, spec.channel, None, None, (), body, content_type, None, None,
                            None, None, None, tuple(settings))


def compile_callback(spec: CallbackSpec) -> CompiledCallback:
    """Validate `spec` and parse all its templates; raises TemplateError for the first problem.

    URL and BATCH_URL: the URL is absolute http/https with a literal host
    (variables only in path, query and fragment); credentials in it move to
    `basic_auth`. Method GET, POST or PUT. GET sends no body, so a body
    template on GET is refused. POST/PUT URL bodies follow the content type
    (an empty or missing body template sends an empty body, except JSON, which
    must be valid JSON). BATCH_URL needs `linePattern` (one line, no CR/LF);
    its URL may hold only `{batch}`, its header values no variables, it has no
    body template (the lines are the body), and GET needs `{batch}` in the URL.
    EMAIL needs a recipient (one address, variables allowed), a subject and a message.
    MQTT and KAFKA need a body template and their templated settings (`TEMPLATED_SETTINGS`).
    """
    if spec.kind not in VARIABLES:
        raise TemplateError("kind", None, f"unknown callback kind {spec.kind!r}; expected one of {', '.join(VARIABLES)}")
    if spec.channel == "EMAIL":
        return _compile_email(spec)
    if spec.channel in TEMPLATED_SETTINGS:
        return _compile_with_settings(spec)
    if spec.channel not in CHANNELS:
        raise TemplateError("channel", None, f"must be one of {', '.join(CHANNELS)}, got {spec.channel!r}")
    batch = spec.channel == "BATCH_URL"
    redacted, basic_auth = _split_url(spec.url)
    extra = frozenset({BATCH_VARIABLE}) if batch else frozenset()
    url = compile_template(spec.url or "", kind=spec.kind, field="url", extra=extra)
    if batch:
        for (literal, name, _), offset in zip(url.segments, url.offsets, strict=False):
            if name is not None and name != BATCH_VARIABLE:
                raise TemplateError("url", offset + len(literal), f"a BATCH_URL URL may only contain {{batch}}, "
                                                                  f"not {{{name}}}")
    if basic_auth is not None:
        url = compile_template(redacted, kind=spec.kind, field="url", extra=extra)
    method = spec.http_method
    if method not in METHODS:
        raise TemplateError("httpMethod", None, f"must be one of {', '.join(METHODS)}, got {method!r}")
    headers = _header_templates(spec, batch)
    body = None
    content_type = None
    if method == "GET":
        if spec.body_template:
            raise TemplateError("bodyTemplate", None, "GET requests have no body; use POST or PUT")
    else:
        content_type = _content_type(spec)
        if batch:
            if spec.body_template:
                raise TemplateError("bodyTemplate", None, "BATCH_URL callbacks send their lines as the body; "
                                                          "use linePattern")
        elif content_type == JSON:
            body = validate_json_body(spec.body_template or "", spec.kind)
        else:
            body = compile_template(spec.body_template or "", kind=spec.kind, field="bodyTemplate")
    line = None
    if batch:
        if not spec.line_pattern:
            raise TemplateError("linePattern", None, "required for BATCH_URL callbacks")
        bad = _LINE_BREAK.search(spec.line_pattern)
        if bad:
            raise TemplateError("linePattern", bad.start(), "a line pattern is one line; CR and LF are not allowed")
        line = compile_template(spec.line_pattern, kind=spec.kind, field="linePattern")
        if method == "GET" and BATCH_VARIABLE not in url.variables:
            raise TemplateError("url", None, "a GET BATCH_URL callback must carry {batch} in its URL")
    return CompiledCallback(spec.id, spec.kind, spec.channel, method, url, headers, body, content_type,
                            basic_auth, line, None, None, None)


def validate_callback(spec: CallbackSpec) -> None:
    """Raise TemplateError for the first problem in `spec` (see compile_callback)."""
    compile_callback(spec)


def render_request(compiled: CompiledCallback, variables: Mapping[str, Any]) -> RenderedRequest:
    """The HTTP request of a URL callback for one message."""
    if compiled.channel != "URL":
        raise ValueError(f"render_request is for URL callbacks, not {compiled.channel}")
    assert compiled.url is not None and compiled.method is not None  # pragma: no mutate (narrows types)
    headers = {name: template.render_header(variables) for name, template in compiled.headers}
    body = None
    if compiled.body is not None:
        if compiled.content_type == JSON:
            body = compiled.body.render_json(variables).encode()
        elif compiled.content_type == FORM:
            body = compiled.body.render_form(variables).encode()
        else:
            body = compiled.body.render_text(variables).encode()
    return RenderedRequest(compiled.method, compiled.url.render_url(variables), headers, body,
                           compiled.content_type, compiled.basic_auth)


def render_batch(compiled: CompiledCallback, variables_list: list[Mapping[str, Any]]) -> RenderedRequest:
    """The one HTTP request of a BATCH_URL callback for the messages of one batch window.

    Layout: each message becomes `linePattern` rendered as plain text (CR/LF in
    values become spaces); lines are joined with "\\n", in the order given, with
    no trailing newline. `{batch}` in the URL receives that joined text,
    percent-encoded. POST and PUT also send it, UTF-8, as the body, with the
    callback's content type (text/plain by default); GET sends no body.
    """
    if compiled.channel != "BATCH_URL":
        raise ValueError(f"render_batch is for BATCH_URL callbacks, not {compiled.channel}")
    if not variables_list:
        raise ValueError("a batch holds at least one message")
    assert compiled.url is not None and compiled.line is not None and compiled.method is not None
    joined = "\n".join(compiled.line.render_line(variables) for variables in variables_list)
    headers = {name: template.text for name, template in compiled.headers}
    body = None if compiled.method == "GET" else joined.encode()
    return RenderedRequest(compiled.method, compiled.url.render_url({BATCH_VARIABLE: joined}), headers, body,
                           compiled.content_type, compiled.basic_auth)


def render_publish(compiled: CompiledCallback, variables: Mapping[str, Any]) -> dict[str, str]:
    """What a channel with settings publishes for one message: its templated settings rendered (`topic`:
    CR, LF and NUL refused, and for MQTT the wildcards + and # too), `body` and `contentType`."""
    if compiled.channel not in TEMPLATED_SETTINGS:
        raise ValueError(f"render_publish is for {', '.join(TEMPLATED_SETTINGS)} callbacks, not {compiled.channel}")
    assert compiled.body is not None and compiled.content_type is not None  # pragma: no mutate (narrows)
    out = {name: template.render_header(variables) for name, template in compiled.settings}
    if compiled.channel == "MQTT" and ("+" in out["topic"] or "#" in out["topic"]):
        raise TemplateError("channelSettings.topic", None, "rendered topic holds an MQTT wildcard (+ or #)")
    body = compiled.body.render_json(variables) if compiled.content_type == JSON else compiled.body.render_text(variables)
    return {**out, "body": body, "contentType": compiled.content_type}


def render_email(compiled: CompiledCallback, variables: Mapping[str, Any]) -> tuple[str, str, str]:
    """(recipient, subject, body) of an EMAIL callback; a recipient that renders to
    no address, or a subject with CR/LF, raises TemplateError."""
    if compiled.channel != "EMAIL":
        raise ValueError(f"render_email is for EMAIL callbacks, not {compiled.channel}")
    assert compiled.recipient is not None  # pragma: no mutate (these three narrow types for mypy)
    assert compiled.subject is not None and compiled.message is not None  # pragma: no mutate
    recipient = compiled.recipient.render_text(variables).strip()
    if not _EMAIL.fullmatch(recipient):
        raise TemplateError("recipient", None, "rendered recipient is not an e-mail address")
    return recipient, compiled.subject.render_header(variables), compiled.message.render_text(variables)
