"""Lists: `limit`/`offset` (and `since`/`before`) in, `{data, paging: {next}}` out."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from oss.params import INT32, q_int
from oss.storage.sql import Page, Window

MAX_LIMIT = 100


def page(request: web.Request) -> Page:
    return Page(limit=q_int(request, "limit", default=MAX_LIMIT, lo=1, hi=MAX_LIMIT),
                offset=q_int(request, "offset", default=0, lo=0, hi=INT32))


def window(request: web.Request) -> Window:
    """The `since` and `before` filters (epoch ms)."""
    return Window(since=q_int(request, "since", lo=0, hi=2**53), before=q_int(request, "before", lo=0, hi=2**53))


def listing(request: web.Request, pg: Page, items: list[Any], **extra: Any) -> dict[str, Any]:
    """The list body; `paging.next` is the full URL of the next page when there is one."""
    body: dict[str, Any] = {"data": items[: pg.limit], **extra, "paging": {}}
    if len(items) > pg.limit:
        query = dict(request.query)
        query["limit"] = str(pg.limit)
        query["offset"] = str(pg.offset + pg.limit)
        body["paging"]["next"] = str(request.url.with_query(query))
    return body
