"""The API application: middlewares (errors and metrics, auth, rate limits), routes, serving."""
from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from backhaul import metrics, reachability
from backhaul.db import create_pool, migrate
from backhaul.destinations import DestinationPolicy
from backhaul.failures import dependency_of, is_infrastructure
from backhaul.secretbox import keyring
from backhaul.settings import settings
from oss.api import RESOURCES
from oss.auth import CALLER, CredentialCache, authenticate, hash_secret, new_secret, unknown_login_hash
from oss.bulk_jobs import JobRunner
from oss.clock import new_id
from oss.context import (
    COVERAGE_JOBS,
    COVERAGE_SITES,
    CREDENTIALS,
    DESTINATIONS,
    JOBS,
    KEEPALIVE_MIN,
    LOGINS,
    POOL,
    RADIO,
    TILES,
)
from oss.coverage_jobs import CoverageJobs
from oss.coverage_sites import SitesCache
from oss.coverage_tiles import TileCache
from oss.errors import (
    ApiError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    json_response,
)
from oss.http_server import ApiRunner
from oss.login_throttle import LoginPolicy, LoginThrottle
from oss.params import BODY_LIMITS, BodyLimits
from oss.profiles import ADMIN
from oss.ratelimit import RateLimiter, limit_name, parse_limits, request_key
from oss.retention import retention_loop
from oss.storage import api_users, groups
from radio import link_budget

log = logging.getLogger(__name__)

PUBLIC = ("/v2/openapi.json",)


def radio_configuration_named(rc_id: str) -> link_budget.RadioConfiguration:
    """The configuration of BACKHAUL_RADIO_CONFIGURATION; a clear error at start for an unknown one."""
    try:
        return link_budget.radio_configuration(rc_id)
    except ValueError as exc:
        raise ValueError(f"BACKHAUL_RADIO_CONFIGURATION: {exc}") from None


def route_of(request: web.Request) -> str:
    """The canonical path of the matched route (a bounded metrics label)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def merge_slashes(request: web.Request, handler) -> web.StreamResponse:
    """A path with `//` (a client joining a base URL that ends in / with a path that starts with one) is
    served as the path with single slashes, as the reference does, without a redirect.

    The route was matched before any middleware ran, so the request is matched again and the other
    middlewares (errors, then auth: a path is authenticated after it is merged) run on the merged one,
    as aiohttp's own `normalize_path_middleware` does it."""
    raw = request.rel_url.raw_path
    if "//" not in raw:
        return await handler(request)
    query = request.rel_url.raw_query_string
    merged = request.clone(rel_url=re.sub("/{2,}", "/", raw) + (f"?{query}" if query else ""))
    match = await request.app.router.resolve(merged)
    match.add_app(request.app)
    merged._match_info = match
    inner: Any = match.handler
    for middleware in reversed(request.app.middlewares[1:]):  # the ones after this one, in order
        inner = functools.partial(middleware, handler=inner)
    return await inner(merged)


@web.middleware
async def observe(request: web.Request, handler) -> web.StreamResponse:
    """Render every error in the v2 shape and count every request."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except ApiError as exc:
        response = exc.response()
    except web.HTTPMethodNotAllowed as exc:
        response = MethodNotAllowed(list(exc.allowed_methods)).response()
    except web.HTTPNotFound:
        response = NotFound().response()
    except web.HTTPRequestEntityTooLarge:
        response = PayloadTooLarge(request.client_max_size).response()
    except web.HTTPException as exc:
        response = json_response({"message": exc.reason}, exc.status)
    except Exception as exc:
        if is_infrastructure(exc):
            # PostgreSQL away: not the request's fault. 503 with Retry-After; the pool reconnects by itself.
            metrics.INFRA_ERRORS.labels("api", dependency_of(exc)).inc()
            log.warning("database unreachable: answered 503", extra={
                "method": request.method, "route": route_of(request), "errorType": type(exc).__name__,
                "error": str(exc)[:300]})
            response = ServiceUnavailable().response()
        else:
            log.exception("request failed", extra={"method": request.method, "route": route_of(request)})
            response = json_response({"message": "Internal server error"}, 500)
    route = route_of(request)
    metrics.API_REQUESTS.labels(request.method, route, str(response.status)).inc()
    metrics.API_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
    return response


def guard(limiter: RateLimiter):
    """Authenticate the caller, then apply its rate limit."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if request.path in PUBLIC or not request.path.startswith("/v2/"):
            return await handler(request)
        who = await authenticate(request.app[POOL], request.app[CREDENTIALS], request.app[LOGINS], request)
        request[CALLER] = who
        route = route_of(request)
        name = limit_name(request.method, route)
        wait = limiter.check(name, (request.method, route, *request_key(request, name, who.api_user_id)))
        if wait is not None:
            metrics.API_RATE_LIMITED.labels(route).inc()
            raise TooManyRequests(wait)
        return await handler(request)

    return middleware


def create_app(pool: asyncpg.Pool, *, rate_limits: str | None = None, keepalive_min_s: int | None = None,
               auth_cache_s: float | None = None, bulk_chunk: int | None = None,
               callback_allow_networks: str | None = None, login_policy: LoginPolicy | None = None,
               body_limits: BodyLimits | None = None, radio_configuration: str | None = None) -> web.Application:
    """The API on `pool`; keyword arguments override the settings (tests use them)."""
    conf = settings()
    limiter = RateLimiter(parse_limits(conf.api_rate_limits if rate_limits is None else rate_limits))
    limits = body_limits or BodyLimits(conf.api_max_body_bytes, conf.api_max_bulk_bytes)
    # Handlers read bodies with oss.params.read_body (a limit per kind); this caps any other read.
    app = web.Application(middlewares=[merge_slashes, observe, guard(limiter)],
                          client_max_size=max(limits.json, limits.bulk))
    app[BODY_LIMITS] = limits
    app[POOL] = pool
    app[CREDENTIALS] = CredentialCache(conf.api_auth_cache_s if auth_cache_s is None else auth_cache_s)
    app[KEEPALIVE_MIN] = conf.keepalive_min_s if keepalive_min_s is None else keepalive_min_s
    app[DESTINATIONS] = DestinationPolicy.parse(conf.callback_allow_networks if callback_allow_networks is None
                                                else callback_allow_networks)
    app[JOBS] = JobRunner(pool, conf.api_bulk_chunk if bulk_chunk is None else bulk_chunk)
    app[LOGINS] = LoginThrottle(login_policy or LoginPolicy.from_settings(conf))
    app[RADIO] = radio_configuration_named(radio_configuration or conf.radio_configuration)
    app[COVERAGE_SITES] = SitesCache()
    app[COVERAGE_JOBS] = CoverageJobs(pool, app[COVERAGE_SITES], app[RADIO])
    app[TILES] = TileCache(stations=app[COVERAGE_SITES])
    unknown_login_hash()  # computed now, so the first unknown login costs what every other one does
    for module in RESOURCES:
        app.router.add_routes(module.routes)
        for route in module.routes:
            path = getattr(route, "path", "")
            if path.endswith("/") and path != "/":
                app.router.add_route(route.method, path.rstrip("/"), route.handler)
    app.on_startup.append(lambda app: app[JOBS].resume())
    app.on_startup.append(lambda app: app[COVERAGE_JOBS].resume())
    app.on_cleanup.append(lambda app: app[JOBS].close())
    app.on_cleanup.append(lambda app: app[COVERAGE_JOBS].close())
    app.cleanup_ctx.append(release_login_locks)
    return app


async def release_login_locks(app: web.Application):
    """Release (and log) expired login locks every second, even when no request comes."""
    async def loop() -> None:
        while True:
            await asyncio.sleep(1.0)
            app[LOGINS].release_expired()

    task = asyncio.create_task(loop())
    yield
    task.cancel()


async def bootstrap_root(pool: asyncpg.Pool, name: str) -> tuple[str, str, str]:
    """Create a root group and an API user with every right on it: (group id, API user id, token)."""
    group_id, api_user_id, secret = new_id(), new_id(), new_secret()
    hashed = await asyncio.to_thread(hash_secret, secret)
    async with pool.acquire() as conn, conn.transaction():
        await groups.create(conn, None, {"id": group_id, "name": name, "type": 0})
        await api_users.create(conn, {"id": api_user_id, "name": f"{name} admin", "group_id": group_id,
                                      "profile_ids": [ADMIN], "secret_hash": hashed})
    return group_id, api_user_id, secret


# The API's queries are scoped by a sub-query on the caller's group (`oss.storage.scope`): with a generic
# plan (what a prepared statement gets after five runs) PostgreSQL cannot see how few groups that is, and a
# list of 100,000 devices sorted by last seen took 0.72 s instead of 0.25 s (bench/README.md, "The
# console's device list"). Custom plans cost a planning per query (1 to 3 ms), which the API can afford.
API_SESSION_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


async def create_api_pool(dsn: str | None = None) -> asyncpg.Pool:
    """The API's pool: its sessions plan every query for its parameters."""
    return await create_pool(dsn, server_settings=API_SESSION_SETTINGS)


async def serve_api(host: str, port: int,
                    extend: Callable[[web.Application], None] | None = None) -> None:
    """Migrate, then serve the API (and /metrics) until cancelled; `extend` adds to the application (the
    program mounts the console with it: the API imports nothing above it)."""
    conf = settings()
    keyring()  # the API seals callback secrets: refuse to start without the key
    pool = await create_api_pool(conf.database_url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        app = create_app(pool)
        app.router.add_get("/metrics", make_aiohttp_handler())
        if extend is not None:
            extend(app)
        runner = ApiRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("API listening", extra={"host": host, "port": port})
        purge = asyncio.create_task(retention_loop(pool, conf.message_retention_days))
        watcher = asyncio.create_task(reachability.watch({"postgresql": reachability.PostgresCheck(pool)}))
        try:
            await asyncio.Event().wait()
        finally:
            purge.cancel()
            watcher.cancel()
            await runner.cleanup()
    finally:
        await pool.close()
