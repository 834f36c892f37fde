"""Publishes configuration changes from PostgreSQL to the compacted `config` topic.

Triggers on the configuration tables append `<entity>:<id>` to `config_outbox`
and NOTIFY. The relay wakes on the notification (or every second), reads the
current rows of the changed keys, publishes them (a tombstone for a deleted
row), waits for Kafka's acknowledgement and only then deletes the outbox rows.
Publishing the current row, not the change, makes a replay harmless.

While PostgreSQL or Kafka is unreachable the relay waits and tries again (a
new connection, a new producer after a Kafka failure), counting each failure
in `backhaul_infrastructure_errors_total{stage="relay"}`; the outbox keeps
what was not published.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from backhaul import metrics
from backhaul.failures import dependency_of, is_infrastructure
from backhaul.kafka import Out, make_producer, send_all
from backhaul.settings import settings
from backhaul.topics import topic
from schemas.config_records import config_key, encode_config_row
from schemas.topics import CONFIG

log = logging.getLogger(__name__)

TABLES = {
    "device": "devices",
    "deviceType": "device_types",
    "callback": "callbacks",
    "station": "base_stations",
    "group": "groups",
    "contract": "contract_infos",
}
_RELAY_LOCK = 0x72656C79
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
PRODUCER_STOP_S = 5.0


async def publish_pending(conn: asyncpg.Connection, producer: AIOKafkaProducer, *, limit: int = 5000) -> int:
    """Publish up to `limit` outbox rows; returns how many were handled."""
    rows = await conn.fetch(
        "SELECT seq, key, (extract(epoch from created_at) * 1000)::bigint AS changed_at "
        "FROM config_outbox ORDER BY seq LIMIT $1", limit)
    if not rows:
        return 0
    by_entity: dict[str, dict[str, int]] = defaultdict(dict)
    for r in rows:
        entity, _, ident = r["key"].partition(":")
        by_entity[entity][ident] = r["changed_at"]
    records = []
    for entity, changed in by_entity.items():
        table = TABLES.get(entity)
        if table is None:
            continue
        found = {
            r["id"]: r["row"]
            for r in await conn.fetch(f"SELECT id, to_jsonb(t)::text AS row FROM {table} t WHERE id = ANY($1)",
                                      list(changed))
        }
        for ident, changed_at in changed.items():
            key = config_key(entity, ident)
            row = found.get(ident)
            if row is None:
                records.append(Out(topic(CONFIG), key, None))
            else:
                records.append(Out(topic(CONFIG), key, encode_config_row(orjson.loads(row), changed_at)))
    await send_all(producer, records)
    await conn.execute("DELETE FROM config_outbox WHERE seq <= $1", rows[-1]["seq"])
    return len(rows)


async def run_relay(stop: asyncio.Event | None = None, *, dsn: str | None = None) -> None:
    """Relay forever (until `stop` is set), waiting out PostgreSQL or Kafka when they go away."""
    stop = stop or asyncio.Event()
    producer = None
    pause = RETRY_FIRST_S
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                if producer is None:
                    producer = make_producer()
                    await producer.start()
                await _relay_session(producer, stop, dsn or settings().database_url)
            except Exception as exc:
                if not (is_infrastructure(exc) or isinstance(exc, asyncpg.PostgresError)):
                    raise  # (any error PostgreSQL answers is tried again, as the relay always did)
                if time.monotonic() - started > RETRY_MAX_S:
                    pause = RETRY_FIRST_S  # it had been running: a new outage starts the pauses afresh
                dependency = dependency_of(exc)
                metrics.INFRA_ERRORS.labels("relay", dependency).inc()
                log.warning("relay lost Kafka or PostgreSQL: trying again", extra={
                    "dependency": dependency, "errorType": type(exc).__name__, "error": str(exc)[:300],
                    "retryInS": pause})
                if dependency == "kafka" and producer is not None:
                    # A producer whose send failed may be out of sequence for good: start a new one.
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(producer.stop(), PRODUCER_STOP_S)
                    producer = None
                try:
                    await asyncio.wait_for(stop.wait(), pause)
                except asyncio.TimeoutError:
                    pass
                pause = min(RETRY_MAX_S, pause * 2)
    finally:
        if producer is not None:
            await producer.stop()


async def _relay_session(producer: AIOKafkaProducer, stop: asyncio.Event, dsn: str) -> None:
    """Relay on one connection until `stop` is set or something fails (raised)."""
    conn = await asyncpg.connect(dsn)
    wake = asyncio.Event()
    try:
        # One relay at a time: others wait here as hot standbys.
        await conn.execute("SELECT pg_advisory_lock($1)", _RELAY_LOCK)
        await conn.add_listener("config_outbox", lambda *_: wake.set())
        log.info("config relay running")
        while not stop.is_set():
            wake.clear()
            handled = await publish_pending(conn, producer)
            if handled:
                continue
            try:
                await asyncio.wait_for(wake.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
    finally:
        try:
            await conn.close(timeout=2)
        except Exception:  # noqa: BLE001  (the server went away: drop the connection)
            conn.terminate()
