"""A callback's console form: its fields to and from the API's body, and its errors placed in the text.

The form writes headers as one `Name: value` per line (a textarea); the API takes an object. Errors come
from the API's own checks (`oss.api.callbacks.callback_problems`) with, for templates and grammars, a
0-based offset into the field's text; `placed` turns that into line, column and a caret under the
faulty character of the control the person typed in.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from callback_language.positions import Place, place
from console.channel_fields import SETTINGS_CHANNELS, control_of, settings_body, settings_values

CHANNELS = ("URL", "BATCH_URL", "EMAIL", *SETTINGS_CHANNELS)
METHODS = ("POST", "PUT", "GET")
CONTENT_TYPES = ("application/x-www-form-urlencoded", "application/json", "text/plain")
# (value of the form's "type" select, label, callbackType, callbackSubtype): every type the API accepts.
TYPES = (
    ("0/2", "DATA / UPLINK", 0, 2), ("0/3", "DATA / BIDIR", 0, 3), ("1/0", "SERVICE / STATUS", 1, 0),
    ("1/4", "SERVICE / ACKNOWLEDGE", 1, 4), ("1/5", "SERVICE / REPEATER", 1, 5),
    ("1/6", "SERVICE / DATA_ADVANCED", 1, 6), ("2", "ERROR", 2, None), ("3", "EVENT (Backhaul)", 3, None),
)
TEXT_FIELDS = ("url", "bodyTemplate", "contentType", "linePattern", "recipient", "subject", "message",
               "payloadConfig")
BY_CHANNEL = {"URL": ("url", "httpMethod", "headers", "sendSni", "bodyTemplate", "contentType", "signingSecret"),
              "BATCH_URL": ("url", "httpMethod", "headers", "linePattern", "signingSecret"),
              "EMAIL": ("recipient", "subject", "message"),
              **{c: ("bodyTemplate", "contentType", "channelSettings") for c in SETTINGS_CHANNELS}}
# API error fields shown beside another control of the form.
CONTROL_OF = {"callbackType": "type", "callbackSubtype": "type", "urlCredentials": "url"}


def form_texts(data: Mapping[str, Any]) -> dict[str, str]:
    """A submitted form as texts, line breaks as LF (browsers send a textarea's as CRLF; templates and grammars
    are stored, checked and placed with LF)."""
    return {k: str(v).replace("\r\n", "\n") for k, v in data.items() if k != "csrf"}


def type_value(callback_type: int, callback_subtype: int | None) -> str:
    return f"{callback_type}/{callback_subtype}" if callback_subtype is not None else str(callback_type)


def type_label(callback_type: int, callback_subtype: int | None) -> str:
    value = type_value(callback_type, callback_subtype)
    return next((label for v, label, _, _ in TYPES if v == value), value)


def parse_headers(text: str) -> tuple[dict[str, str], dict[str, int]]:
    """`Name: value` lines -> ({name: value}, {name: offset of its value in `text`}); blank lines skipped.
    A line without a colon is kept as a name with an empty value, so the API's check names it."""
    headers: dict[str, str] = {}
    starts: dict[str, int] = {}
    offset = 0
    for line in text.split("\n"):
        raw = line.rstrip("\r")
        if raw.strip():
            name, colon, value = raw.partition(":")
            lead = len(value) - len(value.lstrip()) if colon else 0
            headers[name.strip()] = value.strip()
            starts[name.strip()] = offset + len(name) + len(colon) + lead
        offset += len(line) + 1
    return headers, starts


def headers_text(headers: Mapping[str, str] | None) -> str:
    return "\n".join(f"{k}: {v}" for k, v in (headers or {}).items())


def form_body(form: Mapping[str, str], *, creating: bool) -> dict[str, Any]:
    """The API body a callback form describes (create: `createCallback`; edit: `updateCallback`, where an
    empty text clears the field and an empty secret keeps the stored one)."""
    channel = form.get("channel", "URL")
    body: dict[str, Any] = {}
    if creating:
        body["channel"] = channel
        body["enabled"] = form.get("enabled") == "on"
    chosen = next((t for t in TYPES if t[0] == form.get("type", "0/2")), TYPES[0])
    body["callbackType"] = chosen[2]
    if chosen[3] is not None:
        body["callbackSubtype"] = chosen[3]
    wanted = BY_CHANNEL.get(channel, ())
    for name in (*TEXT_FIELDS, "httpMethod"):
        if name not in wanted and name != "payloadConfig":
            continue
        value = form.get(name, "")
        if value:
            body[name] = value
        elif not creating and name not in ("url", "recipient", "httpMethod"):
            body[name] = None
    if "headers" in wanted:
        body["headers"] = parse_headers(form.get("headers", ""))[0]
    if "sendSni" in wanted:
        body["sendSni"] = form.get("sendSni") == "on"
    if "channelSettings" in wanted:
        body["channelSettings"] = settings_body(form, channel, creating=creating)
    if "signingSecret" in wanted:
        if form.get("signingAction") == "generate":
            body["signingSecret"] = "generate"
        elif form.get("signingAction") == "remove" and not creating:
            body["signingSecret"] = None
        elif form.get("signingSecret"):
            body["signingSecret"] = form["signingSecret"]
    return body


def form_values(callback: Mapping[str, Any]) -> dict[str, str]:
    """What an edit form shows of a callback the API answered (secrets masked as the API masks them)."""
    values = {name: str(callback.get(name) or "") for name in TEXT_FIELDS}
    values.update(channel=str(callback.get("channel", "URL")), httpMethod=str(callback.get("httpMethod") or "POST"),
                  type=type_value(int(callback.get("callbackType", 0)), callback.get("callbackSubtype")),
                  headers=headers_text(callback.get("headers")), sendSni="on" if callback.get("sendSni") else "",
                  enabled="on" if callback.get("enabled") else "", signingSecret="", signingAction="keep")
    values.update(settings_values(values["channel"], callback.get("channelSettings")))
    return values


@dataclass(frozen=True)
class Problem:
    """One error of the form, on the control it belongs to; `where` when the checks gave a position."""

    control: str
    field: str
    message: str
    where: Place | None = None


def placed(field: str, message: str, position: int | None, form: Mapping[str, str]) -> Problem:
    """The API's error on `field` (at `position` of its text) as the form shows it."""
    if field.startswith("headers."):
        name = field.removeprefix("headers.")
        text = form.get("headers", "")
        start = parse_headers(text)[1].get(name)
        where = place(text, start + position) if start is not None and position is not None else None
        return Problem("headers", field, message, where)
    control = CONTROL_OF.get(field) or control_of(field)
    text = form.get(control, "")
    where = place(text, position) if position is not None and isinstance(text, str) else None
    return Problem(control, field, message, where)
