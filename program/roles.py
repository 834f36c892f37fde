"""Running stream roles in one process: ingest, router, delivery, store, relay, stations, acks, dispatch.

Every process serves `/metrics` (Prometheus), `/status` (what runs, ready
or not) and `/ready` (200 once every role of the process is ready, 503 until
then: a readiness probe) on 127.0.0.1 (BACKHAUL_METRICS_HOST), on the port of
its first role unless told otherwise.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from backhaul.settings import settings

log = logging.getLogger(__name__)

ROLES = ("ingest", "router", "delivery", "store", "relay", "stations", "acks", "dispatch")
# Roles that use PostgreSQL (every role uses Kafka): their process checks that it reaches both.
POSTGRES_ROLES = frozenset({"delivery", "store", "relay"})
# Each role's metrics port is BACKHAUL_METRICS_PORT_BASE (9100) plus its offset; the simulator takes 8.
METRICS_PORT_OFFSETS = {"ingest": 1, "router": 2, "delivery": 3, "store": 4, "relay": 5, "stations": 6, "acks": 7,
                        "simulate": 8, "dispatch": 9}
METRICS_PORTS = {role: 9100 + offset for role, offset in METRICS_PORT_OFFSETS.items() if role in ROLES}


def role_metrics_port(role: str) -> int:
    """The /metrics port of a role (or of the simulator) under the current settings."""
    return settings().metrics_port_base + METRICS_PORT_OFFSETS[role]


async def start_metrics_server(port: int, status: dict[str, Any]) -> web.AppRunner:
    """Serve /metrics, /status and /ready on BACKHAUL_METRICS_HOST:port (port 0 picks a free one)."""
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler())

    async def status_handler(request: web.Request) -> web.Response:
        return web.json_response({k: v() if callable(v) else v for k, v in status.items()})

    async def ready_handler(request: web.Request) -> web.Response:
        # /status answers 200 whatever `ready` says: a probe needs the answer in the status code.
        ready = status.get("ready", False)
        ready = bool(ready() if callable(ready) else ready)
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    app.router.add_get("/status", status_handler)
    app.router.add_get("/ready", ready_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings().metrics_host, port)
    await site.start()
    return runner


class RoleCrashed(Exception):
    """A role ended by itself (an exception, already logged with its traceback)."""


async def until_stopped(stop: asyncio.Event, tasks: list[asyncio.Task]) -> None:
    """Wait for `stop`; if a role's task ends first, log why (with its traceback) and raise RoleCrashed."""
    stopped = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    for t in done:
        if t is stopped:
            continue
        exc = None if t.cancelled() else t.exception()
        if exc is not None:
            log.error("role crashed", exc_info=exc, extra={"stage": t.get_name()})
            raise RoleCrashed(f"role {t.get_name()} crashed: {type(exc).__name__}") from exc
        log.error("role ended by itself", extra={"stage": t.get_name(), "cancelled": t.cancelled()})
        raise RoleCrashed(f"role {t.get_name()} ended by itself")


async def run_roles(roles: list[str], *, metrics_port: int | None = None,
                    stop: asyncio.Event | None = None) -> None:
    """Run the given roles until SIGTERM/SIGINT (or `stop`), registered as an instance of this
    machine (program.instances) from start to end."""
    from program.instances import registered

    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise SystemExit(f"unknown role(s) {unknown}; choose from {', '.join(ROLES)}")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    port = metrics_port if metrics_port is not None else (settings().metrics_port or role_metrics_port(roles[0]))
    with registered(roles, port) as instance:
        # Every consumer group member of this process is a static member under the instance's id.
        await _run(roles, port, instance.id if settings().static_membership else None, stop)


async def _run(roles: list[str], port: int, member: str | None, stop: asyncio.Event) -> None:
    from backhaul import db, reachability
    from backhaul.config_relay import run_relay
    from backhaul.configview import ConfigView
    from backhaul.kafka import ensure_topics

    if "delivery" in roles:
        from backhaul.secretbox import keyring
        keyring()  # the worker that opens callback secrets refuses to start without its key
    await ensure_topics()
    pool = None
    if {"delivery", "store"} & set(roles):
        pool = await db.create_pool(max_size=8)
        async with pool.acquire() as conn:
            await db.migrate(conn)
    view = None
    if {"ingest", "router", "delivery", "stations"} & set(roles):
        view = ConfigView()
        await view.start()

    runners: list[Any] = []
    tasks: list[asyncio.Task] = []
    status: dict[str, Any] = {"roles": roles, "instance": member}
    if "ingest" in roles:
        from ingest.stage import IngestStage
        assert view is not None  # started above for this role
        runners.append(IngestStage(view))
    if "router" in roles:
        from router.stage import RouterStage
        assert view is not None  # started above for this role
        runners.append(RouterStage(view))
    if "store" in roles:
        from store.stage import StoreStage
        runners.append(StoreStage(pool))
    if "delivery" in roles:
        from workers.delivery import DeliveryWorker
        from workers.retry_store import RetryStore
        assert view is not None  # started above for this role
        runners.append(DeliveryWorker(view, RetryStore(pool, claim_s=settings().retry_claim_s)))
    if "stations" in roles:
        from simulator.stations import StationsStage
        assert view is not None  # started above for this role
        runners.append(StationsStage(view))
    if "acks" in roles:
        from workers.acks import AcksStage
        runners.append(AcksStage())
    if "dispatch" in roles:
        from workers.downlink_dispatch import DownlinkDispatchStage
        runners.append(DownlinkDispatchStage())
    for r in runners:
        r.instance_id = member
        tasks.append(asyncio.create_task(r.run(), name=getattr(r, "name", "delivery")))
    relay_stop = asyncio.Event()
    if "relay" in roles:
        tasks.append(asyncio.create_task(run_relay(relay_stop), name="relay"))
    checks: dict[str, reachability.Check] = {"kafka": reachability.KafkaCheck()}
    if POSTGRES_ROLES & set(roles):
        checks["postgresql"] = reachability.PostgresCheck(pool)
    watcher = asyncio.create_task(reachability.watch(checks), name="reachability")
    status["ready"] = lambda: all(r.ready.is_set() for r in runners)

    def partitions() -> dict[str, list[str]]:
        """The partitions each role of this process holds now (`topic:partition`): who works on what."""
        held = {}
        for r in runners:
            consumer = getattr(r, "consumer", None)
            held[getattr(r, "name", "delivery")] = sorted(
                f"{tp.topic}:{tp.partition}" for tp in (consumer.assignment() if consumer is not None else ()))
        return held

    status["partitions"] = partitions
    status["config"] = lambda: view.records_applied if view else None
    metrics_runner = await start_metrics_server(port, status)
    log.info("worker running", extra={"roles": roles, "metrics_port": port, "instance": member})
    try:
        await until_stopped(stop, tasks)
    finally:
        for r in runners:
            r.stop()
        relay_stop.set()
        watcher.cancel()
        await asyncio.wait(tasks + [watcher], timeout=15)
        for t in tasks:
            t.cancel()
        if view:
            await view.stop()
        if pool:
            await pool.close()
        await metrics_runner.cleanup()
