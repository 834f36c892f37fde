"""Rendering: the values every template gets, pages and error pages."""
from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from console.context import SESSION
from console.navigation import navigation
from console.sessions import Session


def template_context(request: web.Request) -> dict[str, Any]:
    """What every page's layout needs: the session (None on public pages), its CSRF token, the menu."""
    session: Session | None = request.get(SESSION)
    return {"session": session, "csrf": session.csrf if session else "",
            "nav": navigation(session, request.path) if session else [], "path": request.path}


def render(request: web.Request, template: str, values: dict[str, Any], *, status: int = 200) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, {**template_context(request), **values}, status=status)


def page_error(request: web.Request, status: int, message: str) -> web.Response:
    """An error page (or the fragment an htmx request swaps in) with the API's status and message."""
    titles = {400: "Not accepted", 401: "Not signed in", 403: "Not allowed", 404: "Not found",
              409: "Conflict", 429: "Too many requests", 503: "Unavailable"}
    template = "fragments/error.html" if request.headers.get("HX-Request") else "error.html"
    return render(request, template, {"status": status, "title": titles.get(status, "Error"),
                                      "message": message or titles.get(status, "Error")}, status=status)
