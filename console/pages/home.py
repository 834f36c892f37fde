"""The home page: what the group holds, its traffic over the last 24 h and what is failing now.

Console-only aggregates (oss.storage.dashboard), read for the session's group and its sub-groups only, and
each figure only for a session whose rights read that resource (as the API's lists would).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from console.context import session_of
from console.render import render
from console.times import utc_text
from oss.context import POOL
from oss.storage import dashboard

routes = web.RouteTableDef()
HOURS = 24
LISTED = 20  # failing callbacks and devices in error shown on the page
CHART_W, CHART_H, CHART_TOP = 720, 160, 16


@dataclass(frozen=True)
class Bar:
    """One hour's bar of the messages chart, in the SVG's coordinates."""

    start_ms: int
    label: str
    count: int
    x: float
    y: float
    width: float
    height: float


def hourly_bars(per_hour: dict[int, int], now_ms: int, hours: int = HOURS) -> list[Bar]:
    """`hours` bars ending with the current hour, each scaled to the busiest one (zero hours have no height)."""
    first = (now_ms // dashboard.HOUR_MS - hours + 1) * dashboard.HOUR_MS
    starts = [first + i * dashboard.HOUR_MS for i in range(hours)]
    top = max((per_hour.get(s, 0) for s in starts), default=0) or 1
    slot = CHART_W / hours
    bars = []
    for i, start in enumerate(starts):
        n = per_hour.get(start, 0)
        height = (CHART_H - CHART_TOP) * n / top
        bars.append(Bar(start, time.strftime("%H:00", time.gmtime(start / 1000)), n, i * slot + 2,
                        CHART_H - height, slot - 4, height))
    return bars


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    session = session_of(request)
    who, pool = session.caller, request.config_dict[POOL]
    now = int(time.time() * 1000)
    day_ago = now - HOURS * dashboard.HOUR_MS
    figures: dict[str, Any] = {}
    async with pool.acquire() as conn:
        counted = await dashboard.counts(conn, who.group_id, day_ago)
        for key, needs in (("devices", "devices"), ("device_types", "device-types"), ("users", "users"),
                           ("messages", "messages")):
            if who.can(needs):
                figures[key] = counted[key]
        bars = (hourly_bars(await dashboard.messages_per_hour(conn, who.group_id, day_ago), now)
                if who.can("messages") else [])
        failing = (await dashboard.failing_callbacks(conn, who.group_id, now - dashboard.HOUR_MS, LISTED)
                   if who.can("callbacks") else None)
        in_error = await dashboard.devices_in_error(conn, who.group_id, now, LISTED) if who.can("devices") else None
    return render(request, "home.html", {
        "group": session.group, "figures": figures, "bars": bars, "chart": {"w": CHART_W, "h": CHART_H},
        "failing": failing, "in_error": in_error, "listed": LISTED, "utc": utc_text})
