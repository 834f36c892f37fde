"""The console calls the API's own handlers in-process, as the session's Caller.

No HTTP hop and no second implementation: a console page reads and changes exactly what the same
API user would through /v2 (scope, permissions, validation and error texts are the API's). The
request is a clone of the browser's (no cookie, no header of it goes on), routed on the API's router.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from yarl import URL

from oss.auth import CALLER, Caller
from oss.errors import ApiError, MethodNotAllowed, NotFound, json_response
from oss.params import GIVEN_BODY

API_APP = web.AppKey("api_app", web.Application)


@dataclass(frozen=True)
class Answer:
    """The API's answer: status and decoded JSON body."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else ""

    def field_errors(self) -> dict[str, str]:
        """The v2 error's messages by field name (`errors[].field`)."""
        if not isinstance(self.body, dict):
            return {}
        return {str(e.get("field")): str(e.get("message")) for e in self.body.get("errors") or []
                if isinstance(e, dict)}


class ApiFailed(Exception):
    """A call the page cannot go on without failed: the console shows the API's status and message."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.message or str(answer.status))
        self.answer = answer


class Api:
    """The API as one Caller sees it, for one console request."""

    def __init__(self, request: web.Request, who: Caller) -> None:
        self.request = request
        self.who = who

    async def call(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, json: Any = None,
                   text: str | None = None, content_type: str | None = None) -> Answer:
        """Run the API's handler of `method path` (path with its /v2 prefix) and decode its answer."""
        url = URL(path)
        if query:
            url = url.with_query({k: _query_value(v) for k, v in query.items() if v is not None and v != ""})
        body: bytes | None = None
        headers = {"Accept": "application/json"}
        if json is not None:
            body, headers["Content-Type"] = orjson.dumps(json), "application/json"
        elif text is not None:
            body, headers["Content-Type"] = text.encode(), content_type or "text/csv"
        if body is not None:
            headers["Content-Length"] = str(len(body))
        inner = _clone(self.request, method=method, rel_url=url, headers=headers)
        api_app = self.request.config_dict[API_APP]
        match = await api_app.router.resolve(inner)
        match.add_app(api_app)
        inner._match_info = match
        inner[CALLER] = self.who
        if body is not None:
            inner[GIVEN_BODY] = body
        try:
            response = await match.handler(inner)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPMethodNotAllowed as exc:
            response = MethodNotAllowed(list(exc.allowed_methods)).response()
        except web.HTTPNotFound:
            response = NotFound().response()
        except web.HTTPException as exc:
            response = json_response({"message": exc.reason}, exc.status)
        return _answer(response)

    async def get(self, path: str, **query: Any) -> Any:
        """The body of a GET that must succeed (else ApiFailed: the page shows the API's error)."""
        answer = await self.call("GET", path, query=query)
        if not answer.ok:
            raise ApiFailed(answer)
        return answer.body

    async def pages(self, path: str, *, limit: int = 100, **query: Any) -> list[Any]:
        """Every item of a list, following the API's `paging.next` (for exports and pickers)."""
        items: list[Any] = []
        answer = await self.get(path, limit=limit, **query)
        while True:
            items.extend(answer.get("data", []))
            following = (answer.get("paging") or {}).get("next")
            if not following:
                return items
            nxt = URL(following)
            answer = await self.get(nxt.path, **dict(nxt.query))


def _clone(request: web.Request, **changes: Any) -> web.Request:
    """`request.clone(...)`, also once a page read the browser's form: aiohttp refuses to clone a request whose
    body was read, but the API's request never reads it (its body is GIVEN_BODY), so the flag is lifted for the
    copy and put back."""
    read = request._read_bytes
    request._read_bytes = None
    try:
        return request.clone(**changes)
    finally:
        request._read_bytes = read


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _answer(response: web.StreamResponse) -> Answer:
    raw = response.body if isinstance(response, web.Response) else None
    body: Any = None
    if isinstance(raw, bytes | bytearray) and raw:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw.decode(errors="replace")
    return Answer(response.status, body, dict(response.headers))
