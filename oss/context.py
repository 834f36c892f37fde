"""Typed keys of what the Application holds, and short accessors for handlers."""
from __future__ import annotations

import asyncpg
from aiohttp import web

from backhaul.destinations import DestinationPolicy
from oss.auth import CredentialCache
from oss.bulk_jobs import JobRunner
from oss.login_throttle import LoginThrottle

POOL = web.AppKey("pool", asyncpg.Pool)
CREDENTIALS = web.AppKey("credentials", CredentialCache)
JOBS = web.AppKey("jobs", JobRunner)
KEEPALIVE_MIN = web.AppKey("keepalive_min", int)
DESTINATIONS = web.AppKey("destinations", DestinationPolicy)
LOGINS = web.AppKey("logins", LoginThrottle)


def pool(request: web.Request) -> asyncpg.Pool:
    return request.app[POOL]
