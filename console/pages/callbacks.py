"""A device type's callbacks: the list, creation and edition of every channel and type with live validation
(the API's own checks, errors placed at their line and column), send test, enable/disable, the downlink
marker, delete, and the undelivered log of a callback with replay."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from console.api_calls import API_APP, Answer, ApiFailed
from console.callback_form import (
    BY_CHANNEL,
    CHANNELS,
    CONTENT_TYPES,
    METHODS,
    TYPES,
    Problem,
    form_body,
    form_texts,
    form_values,
    placed,
    type_label,
)
from console.channel_fields import control_of, fields_of, is_secret, new_values
from console.context import api
from console.render import render
from console.times import utc_text
from oss.api.callbacks import callback_problems
from oss.context import DESTINATIONS

routes = web.RouteTableDef()
UNDELIVERED_PAGE = 20


def problems_of(request: web.Request, form: dict[str, str]) -> list[Problem]:
    """The API's checks on the form's callback, each placed in the control it concerns."""
    policy = request.config_dict[API_APP][DESTINATIONS]
    return [placed(e.field, e.message, e.position, form) for e in callback_problems(form_body(form, creating=True),
                                                                                      policy)]


async def _device_type(request: web.Request) -> dict[str, Any]:
    return await api(request).get(f"/v2/device-types/{request.match_info['id']}")  # type: ignore[no-any-return]


async def _callbacks(request: web.Request) -> list[dict[str, Any]]:
    answer = await api(request).get(f"/v2/device-types/{request.match_info['id']}/callbacks")
    return list(answer.get("data", []))


async def _callback(request: web.Request) -> dict[str, Any]:
    wanted = request.match_info["cb"]
    found = next((c for c in await _callbacks(request) if c["id"] == wanted), None)
    if found is None:
        raise web.HTTPNotFound()
    return found


def _destination(cb: dict[str, Any]) -> str:
    channel = cb.get("channel")
    if fields_of(str(channel)):
        settings = cb.get("channelSettings") or {}
        shown = [settings.get(name) for name in ("host", "bootstrapServers", "topic") if settings.get(name)]
        return " ".join(", ".join(v) if isinstance(v, list) else str(v) for v in shown)
    return str(cb.get("recipient") if channel == "EMAIL" else f"{cb.get('httpMethod', '')} {cb.get('url', '')}")


@routes.get("/device-types/{id}/callbacks")
async def list_page(request: web.Request) -> web.Response:
    device_type = await _device_type(request)
    rows = [{**cb, "typeLabel": type_label(cb.get("callbackType", 0), cb.get("callbackSubtype")),
             "destination": _destination(cb)} for cb in await _callbacks(request)]
    notice = {"deleted": "Callback deleted.", "created": "Callback created."}.get(request.query.get("notice", ""), "")
    return render(request, "callbacks.html", {"device_type": device_type, "callbacks": rows, "notice": notice,
                                              "channels": CHANNELS,
                                              "can_write": api(request).who.can("callbacks", write=True)})


async def _form_page(request: web.Request, device_type: dict[str, Any], values: dict[str, str], *,
                     callback: dict[str, Any] | None, problems: list[Problem], errors: dict[str, str] | None = None,
                     notice: str = "", secret: str = "", status: int = 200) -> web.Response:
    channel = values.get("channel", "URL")
    return render(request, "callback_edit.html", {
        "device_type": device_type, "callback": callback, "values": values, "problems": problems,
        "errors": errors or {}, "channel": channel, "fields": BY_CHANNEL.get(channel, ()), "channels": CHANNELS,
        "settings_fields": [(f, is_secret(channel, f)) for f in fields_of(channel)],
        "types": TYPES, "methods": METHODS, "content_types": CONTENT_TYPES, "notice": notice, "secret": secret,
        "can_write": api(request).who.can("callbacks", write=True)}, status=status)


@routes.get("/device-types/{id}/callbacks/new")
async def new_page(request: web.Request) -> web.Response:
    device_type = await _device_type(request)
    channel = request.query.get("channel", "URL") if request.query.get("channel") in CHANNELS else "URL"
    values = {"channel": channel, "type": "0/2", "httpMethod": "POST", "enabled": "on",
              "contentType": "application/json" if channel == "URL" else "", **new_values(channel)}
    return await _form_page(request, device_type, values, callback=None, problems=[])


async def _saved(request: web.Request, device_type: dict[str, Any], form: dict[str, str], answer: Answer,
                 callback: dict[str, Any] | None) -> web.Response:
    """The form again after the API refused it: its errors placed in the text where the checks say."""
    problems = problems_of(request, form) or [Problem(control_of(f), f, m) for f, m in answer.field_errors().items()]
    errors = {} if problems else {"": answer.message or f"Refused ({answer.status})"}
    return await _form_page(request, device_type, form, callback=callback, problems=problems, errors=errors,
                            status=answer.status)


@routes.post("/device-types/{id}/callbacks/new")
async def create(request: web.Request) -> web.StreamResponse:
    device_type = await _device_type(request)
    form = form_texts(await request.post())
    answer = await api(request).call("POST", f"/v2/device-types/{device_type['id']}/callbacks",
                                     json=form_body(form, creating=True))
    if not answer.ok:
        return await _saved(request, device_type, form, answer, None)
    if answer.body.get("signingSecret"):  # shown this once
        created = next(c for c in await _callbacks(request) if c["id"] == answer.body["id"])
        return await _form_page(request, device_type, form_values(created), callback=created, problems=[],
                                notice="Callback created.", secret=answer.body["signingSecret"])
    raise web.HTTPSeeOther(f"/console/device-types/{device_type['id']}/callbacks/{answer.body['id']}?notice=created")


@routes.get("/device-types/{id}/callbacks/{cb}")
async def edit_page(request: web.Request) -> web.Response:
    device_type = await _device_type(request)
    callback = await _callback(request)
    notice = {"created": "Callback created.", "saved": "Saved.", "enabled": "Enabled.", "disabled": "Disabled.",
              "downlink": "This is now the device type's downlink callback."}.get(request.query.get("notice", ""), "")
    return await _form_page(request, device_type, form_values(callback), callback=callback, problems=[],
                            notice=notice)


@routes.post("/device-types/{id}/callbacks/{cb}")
async def update(request: web.Request) -> web.StreamResponse:
    device_type = await _device_type(request)
    callback = await _callback(request)
    form = form_texts(await request.post())
    form["channel"] = callback["channel"]  # a callback keeps its channel
    answer = await api(request).call("PUT", f"/v2/device-types/{device_type['id']}/callbacks/{callback['id']}",
                                     json=form_body(form, creating=False))
    if not answer.ok:
        return await _saved(request, device_type, form, answer, callback)
    if isinstance(answer.body, dict) and answer.body.get("signingSecret"):
        fresh = await _callback(request)
        return await _form_page(request, device_type, form_values(fresh), callback=fresh, problems=[],
                                notice="Saved.", secret=answer.body["signingSecret"])
    raise web.HTTPSeeOther(f"/console/device-types/{device_type['id']}/callbacks/{callback['id']}?notice=saved")


async def _change(request: web.Request, method: str, suffix: str, query: dict[str, Any] | None,
                  notice: str, to_list: bool = False) -> web.StreamResponse:
    ident, cb = request.match_info["id"], request.match_info["cb"]
    answer = await api(request).call(method, f"/v2/device-types/{ident}/callbacks/{cb}{suffix}", query=query)
    if not answer.ok:
        raise ApiFailed(answer)
    if to_list:
        raise web.HTTPSeeOther(f"/console/device-types/{ident}/callbacks?notice={notice}")
    raise web.HTTPSeeOther(f"/console/device-types/{ident}/callbacks/{cb}?notice={notice}")


@routes.post("/device-types/{id}/callbacks/{cb}/enable")
async def enable(request: web.Request) -> web.StreamResponse:
    wanted = (await request.post()).get("enabled") == "true"
    return await _change(request, "PUT", "/enable", {"enabled": wanted}, "enabled" if wanted else "disabled")


@routes.post("/device-types/{id}/callbacks/{cb}/downlink")
async def downlink(request: web.Request) -> web.StreamResponse:
    return await _change(request, "PUT", "/downlink", None, "downlink")


@routes.post("/device-types/{id}/callbacks/{cb}/delete")
async def delete(request: web.Request) -> web.StreamResponse:
    return await _change(request, "DELETE", "", None, "deleted", to_list=True)


@routes.post("/device-types/{id}/callbacks/{cb}/test")
async def send_test(request: web.Request) -> web.Response:
    """Send test (htmx): the API's test operation, its outcome shown in place."""
    ident, cb = request.match_info["id"], request.match_info["cb"]
    answer = await api(request).call("POST", f"/v2/device-types/{ident}/callbacks/{cb}/test")
    if not answer.ok:
        return render(request, "fragments/test_outcome.html", {"outcome": {}, "refused": answer.message},
                      status=answer.status)
    return render(request, "fragments/test_outcome.html", {"outcome": answer.body, "refused": ""})


@routes.post("/callbacks-check")
async def check(request: web.Request) -> web.Response:
    """Live validation (htmx, while typing): the API's checks on the form, errors at their position."""
    form = form_texts(await request.post())
    return render(request, "fragments/problems.html", {"problems": problems_of(request, form), "checked": True,
                                                       "target": "callback-problems"})


@routes.get("/device-types/{id}/callbacks/{cb}/undelivered")
async def undelivered_page(request: web.Request) -> web.Response:
    device_type = await _device_type(request)
    callback = await _callback(request)
    query = {k: request.query[k] for k in ("before", "pageId") if request.query.get(k)}
    answer = await api(request).get(f"/v2/device-types/{device_type['id']}/callbacks/{callback['id']}"
                                    f"/callbacks-not-delivered", limit=UNDELIVERED_PAGE, **query)
    items = [{**u, "when": utc_text(u.get("time"))} for u in answer.get("data", [])]
    following = (answer.get("paging") or {}).get("next") or ""
    notice = request.query.get("replayed", "")
    return render(request, "undelivered.html", {
        "device_type": device_type, "callback": callback, "items": items,
        "typeLabel": type_label(callback.get("callbackType", 0), callback.get("callbackSubtype")),
        "next": following.split("?", 1)[1] if "?" in following else "", "first": bool(query),
        "replayed": notice, "can_write": api(request).who.can("callbacks", write=True),
        "span": (min(i["time"] for i in items), max(i["time"] for i in items) + 1) if items else None})


@routes.post("/device-types/{id}/callbacks/{cb}/undelivered/replay")
async def replay(request: web.Request) -> web.StreamResponse:
    """Replay one entry (its device and time) or every entry shown (the page's time span)."""
    form = await request.post()
    ident, cb = request.match_info["id"], request.match_info["cb"]
    body: dict[str, Any] = {}
    for name in ("since", "before"):
        if str(form.get(name, "")).isdigit():
            body[name] = int(str(form[name]))
    if form.get("deviceId"):
        body["deviceId"] = str(form["deviceId"])
    answer = await api(request).call("POST", f"/v2/device-types/{ident}/callbacks/{cb}/callbacks-not-delivered"
                                             f"/replay", json=body)
    if not answer.ok:
        raise ApiFailed(answer)
    raise web.HTTPSeeOther(f"/console/device-types/{ident}/callbacks/{cb}/undelivered"
                           f"?replayed={answer.body['replayed']}")
