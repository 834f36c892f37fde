"""What the console application and each of its requests hold."""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from backhaul.settings import Settings
from console.api_calls import Api
from console.map_view import checked_base_url
from console.sessions import Session


@dataclass(frozen=True)
class ConsoleSettings:
    idle_s: float
    session_max_s: float
    link_s: float
    cookie_secure: bool
    min_password: int
    public_url: str
    map_base_url: str = ""   # the service map's base layer: a tile URL template, empty = a graticule

    @classmethod
    def from_settings(cls, s: Settings) -> "ConsoleSettings":
        return cls(s.console_idle_s, s.console_session_max_s, s.console_link_s, s.console_cookie_secure,
                   s.console_min_password, s.console_public_url, checked_base_url(s.map_base_url))


CONSOLE_SETTINGS = web.AppKey("console_settings", ConsoleSettings)
SESSION = web.RequestKey("console_session", Session)


def session_of(request: web.Request) -> Session:
    """The signed-in session (the guard lets no page run without one, except the public ones)."""
    return request[SESSION]


def api(request: web.Request) -> Api:
    """The API as the signed-in user sees it in the group it works in."""
    return Api(request, session_of(request).caller)


def console_settings(request: web.Request) -> ConsoleSettings:
    return request.config_dict[CONSOLE_SETTINGS]
