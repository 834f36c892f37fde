"""The console application, mounted under /console in the API's application (same process, same port).

Why inside the API process: the console's pages call the API's handlers in-process (console/api_calls.py),
so they are bound by exactly the API's rights and validation, with no second network hop, no second
credential scheme and one process less to supervise. `BACKHAUL_CONSOLE=false` leaves it out.

Every answer: Cache-Control no-store (after logout the back button shows nothing), a strict
Content-Security-Policy (only our own scripts and styles: nothing external), no framing, and
`Server-Timing: app;dur=<ms>` (console/headers.py).
"""
from __future__ import annotations

import logging
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from backhaul.settings import settings
from console import pages
from console.api_calls import API_APP, ApiFailed
from console.context import CONSOLE_SETTINGS, ConsoleSettings, session_of
from console.guard import guard
from console.headers import finish, start
from console.render import page_error

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


@web.middleware
async def secure_headers(request: web.Request, handler) -> web.StreamResponse:
    """Security and timing headers on every answer (console/headers.py); an API call that failed is shown as
    an error page."""
    start(request)
    try:
        response = await handler(request)
    except ApiFailed as exc:
        response = page_error(request, exc.answer.status, exc.answer.message)
    except web.HTTPNotFound:
        response = page_error(request, 404, "This page does not exist.")
    except web.HTTPRedirection as exc:  # answered here: the API's middleware would render it as JSON
        response = web.Response(status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        response = page_error(request, exc.status, exc.reason)
    finish(request, response)
    return response


def create_console(api_app: web.Application, conf: ConsoleSettings | None = None) -> web.Application:
    """The console sub-application; `api_app` is the API whose handlers it calls."""
    app = web.Application(middlewares=[secure_headers, guard])
    app[API_APP] = api_app
    app[CONSOLE_SETTINGS] = conf or ConsoleSettings.from_settings(settings())
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined)
    static = app.router.add_static("/static", HERE / "static", append_version=True, name="static")
    env.globals["static"] = lambda name: str(static.url_for(filename=name))
    for module in pages.MODULES:
        app.router.add_routes(module.routes)
    # Last: any other console path is a console 404 (behind the guard: unknown paths tell nothing to strangers).
    app.router.add_route("*", "/{unknown:.*}", _unknown)
    return app


async def _unknown(request: web.Request) -> web.Response:
    raise web.HTTPNotFound()


def mount(api_app: web.Application) -> None:
    """Serve the console under /console of the API application."""
    api_app.add_subapp("/console", create_console(api_app))
    api_app.router.add_get("/", _to_console)


async def _to_console(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


__all__ = ["create_console", "mount", "session_of"]
