"""Typed keys of what the Application holds, and short accessors for handlers."""
from __future__ import annotations

import asyncpg
from aiohttp import web

from backhaul.destinations import DestinationPolicy
from oss.auth import CredentialCache
from oss.bulk_jobs import JobRunner
from oss.coverage_jobs import CoverageJobs
from oss.coverage_sites import SitesCache
from oss.coverage_tiles import TileCache
from oss.login_throttle import LoginThrottle
from radio.link_budget import RadioConfiguration

POOL = web.AppKey("pool", asyncpg.Pool)
CREDENTIALS = web.AppKey("credentials", CredentialCache)
JOBS = web.AppKey("jobs", JobRunner)
KEEPALIVE_MIN = web.AppKey("keepalive_min", int)
DESTINATIONS = web.AppKey("destinations", DestinationPolicy)
LOGINS = web.AppKey("logins", LoginThrottle)
COVERAGE_SITES = web.AppKey("coverage_sites", SitesCache)
COVERAGE_JOBS = web.AppKey("coverage_jobs", CoverageJobs)
RADIO = web.AppKey("radio_configuration", RadioConfiguration)
TILES = web.AppKey("tiles", TileCache)


def pool(request: web.Request) -> asyncpg.Pool:
    return request.app[POOL]
