"""The home page."""
from __future__ import annotations

from aiohttp import web

from console.context import session_of
from console.render import render

routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    return render(request, "home.html", {"group": session_of(request).group})
