"""A record that makes a stage fail is moved to `dead-letters` and the stage goes on, in every stage.

Each test runs the real stage in a worker process on the real Kafka (and
PostgreSQL for store), publishes poison records between valid ones and checks
that the valid ones are processed, each poison record is in `dead-letters`
with its error, the stage's consumer group has committed past all of them,
and the process is still alive. The last test cuts PostgreSQL away from the
store for a while: an unreachable database is waited for, never dead-lettered.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse

import pytest

from backhaul.topics import topic
from program.supervised import free_port
from schemas.topics import (
    CONFIG,
    DEAD_LETTERS,
    DELIVERIES,
    DELIVERY_RESULTS,
    DEVICE_EVENTS,
    DOWNLINK_REPORTS,
    DOWNLINK_TRANSMISSIONS,
    DOWNLINKS,
    FRAMES,
    MESSAGES,
)
from simulator.network import device_id
from tests.conftest import frame, read_topic, wait_until
from tests.security.kafka_support import at, dead_letters, publish_raw, raw, wait_committed_past

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def message(device: str, seq: int, **changes) -> dict:
    """A `messages` record as ingest writes it."""
    m = {"id": f"{device}-{seq}-1764165600000", "device": device, "seqNumber": seq, "time": 1764165600000,
         "data": "c0ffee", "station": "A000", "rssi": -100.0, "snr": 12.0, "freq": 868_130_000, "rep": 1,
         "ack": False, "duplicate": False, "avgSnr": 12.0, "overQuota": False, "ingestedAt": 1764165600000}
    m.update(changes)
    return m


def values(records) -> list[dict]:
    import orjson
    return [orjson.loads(r.value) for r in records]


async def test_router_dead_letters_unroutable_records_and_goes_on(pipeline, receiver):
    callback = {"callback_subtype": 0, "url": f"{receiver.url}/data?d={{data}}", "http_method": "POST",
                "content_type": "text/plain", "body_template": "{data}"}
    p = await pipeline([callback], roles=("relay,router",), devices=4)
    worker = p.worker
    d0, d1 = p.devices[:2]
    records = [
        raw(message(d0, 1)),
        raw(b"\xff this is not JSON"),                                        # unreadable
        raw(message(d0, 2)),
        raw({"id": "no-fields", "duplicate": False}),                         # KeyError
        raw(message(d1, 1, time="yesterday")),                                # wrong type: TypeError
        raw(message(d1, 2)),
        # Valid, but its delivery (the data three times) is over the broker's record limit: the batch
        # fails as a whole, is rewound, handled record by record, and only this record is set aside.
        raw(message(d1, 3, data="ab" * 250_000)),
        raw(message(d0, 3)),
    ]
    positions = await publish_raw(MESSAGES, records, partition=0)
    poison = {1: "JSONDecodeError", 3: "KeyError", 4: "TypeError", 6: "RecordTooLarge"}

    letters = await dead_letters(expect=len(poison), timeout=60)
    for i, error_type in poison.items():
        letter = at(letters, MESSAGES, positions[i])
        assert (letter.stage, letter.error_type) == ("router", error_type), letter
        assert letter.value["length"] == len(records[i][1]) and letter.traceback.startswith("Traceback")
    assert at(letters, MESSAGES, positions[6]).attempts == 3
    await wait_committed_past("backhaul-router", MESSAGES, positions)
    deliveries = values(await read_topic(topic(DELIVERIES), expect=4, timeout=30))
    assert {d["recordId"] for d in deliveries} == {f"{d}-{s}-1764165600000" for d, s in ((d0, 1), (d0, 2),
                                                                                         (d1, 2), (d0, 3))}
    assert worker.proc.poll() is None and (await worker.wait_ready(timeout=5))["ready"]
    assert 'backhaul_dead_letters_total{stage="router"} 4.0' in await worker.metrics()


async def test_store_isolates_rows_postgresql_refuses(pipeline, isolated, workers):
    p = await pipeline([], roles=(), devices=3)  # the store reads no configuration
    worker = workers("store", isolated)
    await worker.wait_ready()
    d0, d1, d2 = p.devices
    event = {"id": "ev-poison", "device": d2, "type": "SEQUENCE_BREAK", "time": 1764165600000,
             "note": "a NUL \u0000 jsonb refuses"}
    ok_event = {**event, "id": "ev-ok", "note": "fine"}
    records = [raw(message(d0, 1)), raw(message(d0, 2, data="00\u000011")), raw(message(d1, 1)),
               raw(message(d1, 2, seqNumber=2 ** 40)), raw(b"{not json"), raw(message(d2, 1))]
    positions = await publish_raw(MESSAGES, records, partition=0)
    event_positions = await publish_raw(DEVICE_EVENTS, [raw(event), raw(ok_event)], partition=0)

    rows = await p.wait_rows("SELECT id FROM messages", 3)
    assert {r["id"] for r in rows} == {f"{d}-1-1764165600000" for d in (d0, d1, d2)}
    await p.wait_rows("SELECT id FROM device_events WHERE id = 'ev-ok'", 1)
    letters = await dead_letters(expect=4, timeout=30)
    assert at(letters, MESSAGES, positions[1]).error_type == "CharacterNotInRepertoireError"
    assert at(letters, MESSAGES, positions[3]).error_type == "DataError"        # asyncpg: out of int32 range
    assert at(letters, MESSAGES, positions[4]).error_type == "JSONDecodeError"
    assert at(letters, DEVICE_EVENTS, event_positions[0]).error_type == "UntranslatableCharacterError"
    assert {d.stage for d in letters} == {"store"}
    await wait_committed_past("backhaul-store", MESSAGES, positions)
    await wait_committed_past("backhaul-store", DEVICE_EVENTS, event_positions)
    assert await p.fetch("SELECT id FROM messages WHERE seq_number = 2") == []
    assert worker.proc.poll() is None


async def test_dispatch_stations_and_acks_dead_letter_broken_records(isolated, workers):
    worker = workers("stations,acks,dispatch", isolated, BACKHAUL_DOWNLINK_TRANSMIT_S="2")
    await worker.wait_ready()
    now_ms = int(time.time() * 1000)

    def grant(n: int) -> dict:
        return {"id": f"dl-{n}", "device": "AB", "messageId": f"m-{n}", "uplinkTime": now_ms, "data": "00" * 8,
                "station": "A000", "transmitBy": now_ms + 2_000, "deviceTypeId": "t", "groupId": "g"}

    grants = [raw(grant(1)), raw({"id": "dl-broken"}), raw(grant(2)), raw(b"[]"),
              raw({k: v for k, v in grant(3).items() if k != "data"})]     # neither data nor a template
    transmissions = [raw({"id": "sent-broken", "device": "AB", "transmitBy": now_ms})]
    reports = [raw({"id": "report-broken", "device": "AB"})]
    grant_positions = await publish_raw(DOWNLINKS, grants, partition=0)
    sent_positions = await publish_raw(DOWNLINK_TRANSMISSIONS, transmissions, partition=0)
    report_positions = await publish_raw(DOWNLINK_REPORTS, reports, partition=0)

    letters = await dead_letters(expect=6, timeout=30)
    assert at(letters, DOWNLINKS, grant_positions[1]).error_type == "KeyError"
    assert at(letters, DOWNLINKS, grant_positions[3]).error_type == "AttributeError"   # a list, not an object
    assert (at(letters, DOWNLINKS, grant_positions[4]).error_type,
            at(letters, DOWNLINKS, grant_positions[4]).error) == ("KeyError", "'data'")
    assert {d.stage for d in letters if d.topic == topic(DOWNLINKS)} == {"dispatch"}
    # A broken transmission is set aside by both its readers: the stations, and the dispatcher (which reads
    # back what it sent).
    sent_broken = [d for d in letters if (d.topic, d.partition, d.offset) == (topic(DOWNLINK_TRANSMISSIONS),
                                                                              *sent_positions[0])]
    assert sorted((d.stage, d.error_type, d.error) for d in sent_broken) == [
        ("dispatch", "KeyError", "'data'"), ("stations", "KeyError", "'data'")]
    broken = at(letters, DOWNLINK_REPORTS, report_positions[0])
    assert (broken.stage, broken.error_type, broken.error) == ("acks", "KeyError", "'transmitted'")

    events = values(await read_topic(topic(DEVICE_EVENTS), expect=2, timeout=30))
    assert sorted(e["messageId"] for e in events if e["type"] == "ACKNOWLEDGE") == ["dl-1", "dl-2"], \
        "the grants on either side of the broken ones were sent, transmitted (not: A000 is not registered), acked"
    await wait_committed_past("backhaul-stations", DOWNLINK_TRANSMISSIONS, sent_positions)
    await wait_committed_past("backhaul-acks", DOWNLINK_REPORTS, report_positions)
    assert worker.proc.poll() is None


async def test_delivery_worker_dead_letters_invalid_deliveries_and_releases_them(isolated, workers, receiver):
    worker = workers("delivery", isolated)
    await worker.wait_ready()
    # The callback the deliveries name, as the relay would publish it (a delivery of a callback the worker
    # does not know fails its attempt).
    await publish_raw(CONFIG, [raw({"id": "cb", "device_type_id": "t", "channel": "URL", "enabled": True,
                                    "callback_subtype": 0, "headers": {}}, key=b"callback:cb")])
    await wait_until(lambda: _view_holds(worker, 1), 10, "the delivery worker's view to hold the callback")
    now_ms = int(time.time() * 1000)

    def delivery(n: int, **changes) -> dict:
        d = {"id": f"m-{n}/cb", "callbackId": "cb", "kind": "DATA", "channel": "URL", "recordId": f"m-{n}",
             "messageId": f"m-{n}", "device": "AB", "deviceTypeId": "t", "groupId": "g", "origin": now_ms,
             "createdAt": now_ms, "variables": {}, "downlink": False,
             "request": {"method": "POST", "url": f"{receiver.url}/cb/{n}", "headers": {}, "body": str(n),
                         "contentType": "text/plain", "auth": None}}
        d.update(changes)
        return d

    records = [raw(delivery(1)), raw(b"\x00\x01 not JSON"), raw(delivery(2, request=None)),
               raw(delivery(3)), raw(delivery(4, channel="CARRIER_PIGEON")),
               raw(delivery(5, request={**delivery(5)["request"], "auth": ["only-user"]})), raw(delivery(6))]
    positions = await publish_raw(DELIVERIES, records, partition=0)

    got = await receiver.wait_for(3, timeout=30, path_prefix="/cb/")
    assert sorted(r.path for r in got) == ["/cb/1", "/cb/3", "/cb/6"]
    letters = await dead_letters(expect=4, timeout=30)
    for i, error in ((1, "delivery: not JSON"), (2, "request: missing"), (4, "channel: must be one of"),
                     (5, "request.auth: must be [user, password]")):
        letter = at(letters, DELIVERIES, positions[i])
        assert (letter.stage, letter.error_type) == ("delivery", "InvalidDelivery") and letter.error.startswith(error)
    await wait_committed_past("backhaul-delivery", DELIVERIES, positions)
    # Each send is announced (state "sending") and then completed: three completed sends.
    results = values(await read_topic(topic(DELIVERY_RESULTS), expect=6, timeout=30))
    assert sorted(r["deliveryId"] for r in results if r["state"] == "done") == ["m-1/cb", "m-3/cb", "m-6/cb"]
    assert worker.proc.poll() is None


async def _view_holds(worker, records: int) -> bool:
    import aiohttp
    async with aiohttp.ClientSession() as session:
        return ((await worker.status(session)) or {}).get("config", 0) >= records


async def test_ingest_dead_letters_frames_its_engine_fails_on(pipeline):
    """A device whose configuration record is corrupt makes the engine raise on its frames: those frames
    are set aside; the configuration view itself skips a record it cannot read and keeps following."""
    p = await pipeline([], roles=("relay,ingest",), devices=2)
    corrupt = device_id(999)
    await publish_raw(CONFIG, [raw(b"\xff\xfe not JSON", key=b"device:GARBAGE"),
                               raw({"id": corrupt, "device_type_id": p.ids["deviceType"], "state": 0,
                                    "token_state": 0, "token_end": "next year"}, key=f"device:{corrupt}".encode())])
    await p.wait_config(p.config_records + 1)

    d0, d1 = p.devices
    frames = [frame(d0, 1, station=p.stations[0]), frame(corrupt, 1, station=p.stations[0]),
              frame(d1, 1, station=p.stations[0]), frame(corrupt, 2, station=p.stations[1]),
              frame(d0, 2, station=p.stations[1])]
    positions = await publish_raw(FRAMES, [raw(f, key=f["device"].encode()) for f in frames], partition=0)

    letters = await dead_letters(expect=2, timeout=30)
    for i in (1, 3):
        letter = at(letters, FRAMES, positions[i])
        assert (letter.stage, letter.error_type) == ("ingest", "TypeError") and "'<'" in letter.error
    messages = values(await read_topic(topic(MESSAGES), expect=3, timeout=30))
    assert sorted((m["device"], m["seqNumber"]) for m in messages) == [(d0, 1), (d0, 2), (d1, 1)]
    await wait_committed_past("backhaul-ingest", FRAMES, positions)
    assert p.worker.proc.poll() is None
    assert "config record skipped" in p.worker.log_tail(200)


class TcpProxy:
    """A TCP forwarder to PostgreSQL that the test can cut (existing connections reset, new ones refused)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        self._server.close()
        await self._server.wait_closed()
        for w in list(self._writers):
            w.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


async def test_store_waits_for_postgresql_and_loses_nothing(pipeline, isolated, workers):
    url = urllib.parse.urlsplit(isolated.dsn)
    proxy = TcpProxy(url.hostname, url.port)
    await proxy.start()
    through_proxy = urllib.parse.urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}"))
    p = await pipeline([], roles=(), devices=2)
    store = workers("store", isolated, BACKHAUL_DATABASE_URL=through_proxy)
    await store.wait_ready()
    d0, d1 = p.devices
    await publish_raw(MESSAGES, [raw(message(d0, n)) for n in range(1, 6)], partition=0)
    await p.wait_rows("SELECT id FROM messages", 5)

    await proxy.cut()
    positions = await publish_raw(MESSAGES, [raw(message(d1, n)) for n in range(1, 21)], partition=0)
    await wait_until(lambda: "Kafka or PostgreSQL unavailable" in store.log_tail(400), 30,
                     "the store to find PostgreSQL unreachable")
    await asyncio.sleep(3)  # a few retries while it is away
    assert store.proc.poll() is None
    assert len(await p.fetch("SELECT id FROM messages")) == 5

    await proxy.start()  # PostgreSQL is back on the same address
    rows = await p.wait_rows("SELECT id FROM messages", 25, timeout=60)
    assert {r["id"] for r in rows} >= {f"{d1}-{n}-1764165600000" for n in range(1, 21)}
    await wait_committed_past("backhaul-store", MESSAGES, positions)
    assert await read_topic(topic(DEAD_LETTERS), timeout=2) == []
    assert store.proc.poll() is None
    # Stop it while this loop still runs the proxy its connections go through.
    await asyncio.to_thread(store.stop)
    assert store.proc.returncode == 0, store.log_tail()
    await proxy.cut()
