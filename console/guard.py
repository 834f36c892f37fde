"""The console's gate: a live session on every page but the public ones, terms accepted, CSRF on changes."""
from __future__ import annotations

import time

from aiohttp import web
from yarl import URL

from console.context import SESSION, console_settings
from console.render import page_error
from console.sessions import COOKIE, clear_cookie, expired, load
from oss.context import POOL
from oss.storage import console_sessions

# Reachable without a session (the login itself, setting a password from a link, the static files).
PUBLIC = ("/console/login", "/console/static/", "/console/password/set", "/console/password/forgot")
# Reachable before the terms are accepted.
BEFORE_TERMS = ("/console/terms", "/console/logout")
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOUCH_EVERY_MS = 30_000


def now_ms() -> int:
    return int(time.time() * 1000)


def to_login(request: web.Request) -> web.StreamResponse:
    target = URL("/console/login")
    if request.method == "GET" and request.path not in ("/console/", "/console"):
        target = target.with_query(next=request.path_qs)
    if request.headers.get("HX-Request"):
        response: web.StreamResponse = web.Response(status=204, headers={"HX-Redirect": str(target)})
    else:
        response = web.Response(status=303, headers={"Location": str(target)})
    clear_cookie(response)
    return response


@web.middleware
async def guard(request: web.Request, handler) -> web.StreamResponse:
    if request.path.startswith(PUBLIC):
        return await handler(request)
    conf = console_settings(request)
    token = request.cookies.get(COOKIE)
    pool = request.config_dict[POOL]
    session = await load(pool, token) if token else None
    now = now_ms()
    if session is None or expired(session.created_at, session.last_seen, now, conf.idle_s, conf.session_max_s):
        if session is not None:
            await console_sessions.delete(pool, session.token_hash)
        return to_login(request)
    if request.method in CHANGES:
        sent = request.headers.get("X-CSRF-Token")
        if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            sent = str((await request.post()).get("csrf", ""))
        if not session.csrf_matches(sent):
            return page_error(request, 403, "This form has expired or did not come from the console: "
                                            "reload the page and try again.")
    if not session.terms_accepted and not request.path.startswith(BEFORE_TERMS):
        raise web.HTTPSeeOther("/console/terms")
    if now - session.last_seen > TOUCH_EVERY_MS:
        await console_sessions.touch(pool, session.token_hash, now)
    request[SESSION] = session
    return await handler(request)
