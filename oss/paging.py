"""Lists: `limit`/`offset` (and `since`/`before`/`pageId`) in, `{data, paging: {next}}` out.

Entity lists page by offset, on an order whose last column is unique (`oss.storage.sql.Order`).
Time-ordered lists (messages, locations, undelivered callbacks) page by cursor, as the live
service does with `before`: their `next` link holds `before` = the time of the page's last row
and `pageId`, an opaque token of that row's tie-breaker, so the rows of that very millisecond
not listed yet come next; nothing written meanwhile moves the pages (`NewestFirst`). A client
that keeps only `before` from the link gets what `before` alone means (the rest of that
millisecond is skipped). README "API v2 compatibility" lists `pageId` as our addition.
"""
from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from oss.errors import BadRequest, FieldError
from oss.params import INT32, q_int, q_str
from oss.storage.sql import Cursor, Page, Window

MAX_LIMIT = 100
PAGE_ID = "pageId"
MAX_PAGE_ID = 200  # characters; the longest key, a delivery id, is about 80 (108 in base64)


def page(request: web.Request) -> Page:
    """`limit` and `offset` of an entity list."""
    return Page(limit=q_int(request, "limit", default=MAX_LIMIT, lo=1, hi=MAX_LIMIT),
                offset=q_int(request, "offset", default=0, lo=0, hi=INT32))


def time_page(request: web.Request) -> tuple[Page, Window]:
    """The page and the time filter of a time-ordered list.

    With `pageId` the page continues after the row of time `before` that the token names: `before`
    then bounds the rows after that row, not the time alone.
    """
    pg = page(request)
    since = q_int(request, "since", lo=0, hi=2**53)
    before = q_int(request, "before", lo=0, hi=2**53)
    token = q_str(request, PAGE_ID, max_length=MAX_PAGE_ID)
    if token is None:
        return pg, Window(since=since, before=before)
    if before is None:
        raise BadRequest(FieldError(PAGE_ID, "goes with before: use the next link of the previous page whole",
                                    "query"))
    return Page(pg.limit, pg.offset, Cursor(before, page_key(token))), Window(since=since)


def page_token(key: str) -> str:
    """The `pageId` of a row's tie-breaker key."""
    return base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()


def page_key(token: str) -> str:
    """The tie-breaker key a `pageId` holds; 400 naming `pageId` when it holds none."""
    try:
        key = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode()
    except ValueError:  # not base64 (binascii.Error), or not UTF-8
        key = ""
    if not key or "\x00" in key:  # PostgreSQL text holds no NUL
        raise BadRequest(FieldError(PAGE_ID, "not a page token of this API: take it from paging.next", "query"))
    return key


def listing(request: web.Request, pg: Page, items: list[Any], *, after: Cursor | None = None,
            **extra: Any) -> dict[str, Any]:
    """The list body; `paging.next` is the full URL of the next page when there is one.

    `after` (time-ordered lists) is the cursor of the page's last row: the next link carries it as
    `before` and `pageId` instead of an offset.
    """
    body: dict[str, Any] = {"data": items[: pg.limit], **extra, "paging": {}}
    if len(items) > pg.limit:
        query = dict(request.query)
        query["limit"] = str(pg.limit)
        if after is None:
            query["offset"] = str(pg.offset + pg.limit)
        else:
            query.pop("offset", None)
            query["before"], query[PAGE_ID] = str(after.time), page_token(after.key)
        body["paging"]["next"] = str(request.url.with_query(query))
    return body
