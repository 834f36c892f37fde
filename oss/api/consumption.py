"""/devices/{id}/consumption/{year}[/{month}]: uplinks and transmitted downlinks per day.

One entry per day of the year (or month), first day first, counted in UTC days (the day the daily
quotas count in) from the device's current registration: its stored messages and the downlinks a
station reported transmitted (`oss.storage.consumption`). Backhaul has no roaming: the roaming
counts are 0 and `roamingDetails` is empty. History older than the retention
(`BACKHAUL_MESSAGE_RETENTION_DAYS`) is gone, so its days count 0.

`id` is `<device>_<year>` (`<device>_<year>_<month>` for a month): a string, as the reference's own
example (`1005550_2017`) and the live service have it, where its schema says integer.
"""
from __future__ import annotations

import calendar
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from oss.auth import caller
from oss.context import pool
from oss.errors import json_response
from oss.params import FIRST_YEAR, LAST_YEAR, device_id, path_int
from oss.storage import consumption, devices

routes = web.RouteTableDef()


def _epoch_day(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=timezone.utc).timestamp()) // 86_400


def day_entries(counts: dict[int, tuple[int, int]], first_day: int, days: int) -> list[dict[str, Any]]:
    """The reference's per-day entries for `days` days from epoch day `first_day`."""
    out = []
    for day in range(first_day, first_day + days):
        uplinks, downlinks = counts.get(day, (0, 0))
        out.append({"frameCount": uplinks, "downlinkFrameCount": downlinks, "roamingFrameCount": 0,
                    "roamingDownlinkFrameCount": 0, "roamingDetails": []})
    return out


async def _consumption(request: web.Request, *, monthly: bool) -> web.Response:
    who = caller(request)
    who.require("messages")
    year = path_int(request, "year", lo=FIRST_YEAR, hi=LAST_YEAR)
    month = path_int(request, "month", lo=1, hi=12) if monthly else None
    if month is None:
        first, days, ident = _epoch_day(year, 1, 1), 366 if calendar.isleap(year) else 365, f"{year}"
    else:
        first, days, ident = _epoch_day(year, month, 1), calendar.monthrange(year, month)[1], f"{year}_{month}"
    async with pool(request).acquire() as conn:
        device = await devices.scoped(conn, who.group_id, device_id(request))
        counts = await consumption.per_day(conn, device["registration_id"], first * consumption.DAY_MS,
                                           (first + days) * consumption.DAY_MS)
    return json_response({"id": f"{device['id']}_{ident}", "deviceConsumptions": day_entries(counts, first, days)})


@routes.get("/v2/devices/{id}/consumption/{year}")
async def year_consumption(request: web.Request) -> web.Response:
    return await _consumption(request, monthly=False)


@routes.get("/v2/devices/{id}/consumption/{year}/{month}")
async def month_consumption(request: web.Request) -> web.Response:
    return await _consumption(request, monthly=True)
