"""Ingest state per device: the worker's memory, the changelog's size, and the restore after kill -9.

    python -m bench.ingest_state [--devices 1000000] [--restarts 3] [--stations 20] [--max-stations 3]
                                 [--window-s 5] [--keep-alive 86400] [--sample 20000] [--out bench/results]

In a private topic prefix and database (`bench.sandbox`), a `relay` worker and
an `ingest` worker alone in its process (its memory is ingest's only):

1. registration: N devices are copied into `devices` (COPY, 50,000 rows a
   transaction) as `seed_network` writes them; the table's triggers fill
   `config_outbox`, the relay publishes the rows to the `config` topic and
   the running worker's configuration view follows it. Timed from the first
   COPY (the rows are made before) until the worker's view holds every
   device (its /status `config`).
2. configuration alone: the worker is killed (SIGKILL) and started again
   `--restarts` times, each timed to its /status answering, to ready and to
   its "config view loaded" log line. Its RSS then is N registered devices
   without state.
3. state: one message per device (1 to `--max-stations` stations, 1 or 3
   repetitions, `simulator.network`) through ingest; once every DATA_ADVANCED
   window has closed (`--window-s`) and the changelog stopped growing, every
   device has a `DeviceState` in memory and its record in `ingest.state`.
4. the changelog read back: its records, its size on disk, and the latest
   record of each device (key + value: what compaction keeps of it).
5. restore: kill -9 and restart `--restarts` times, each timed to ready and
   to the worker's "ingest state restored" log line (and the `seconds` it logs).

Memory is VmRSS (and its peak, VmHWM) in /proc/PID/status of the worker, read
2 s after each step settles (and every second of step 3: `rssTimeline`).
Per device: registered = (registered - no device) / N; with state = (after the
traffic, or after a restore, - registered) / N. After the traffic the RSS also
holds what the allocator kept of the burst (windows closing by thousands in one
tick); after a restore it is the state alone. Python-level bytes per device come
from this process, with tracemalloc, on `--sample` devices: their configuration
rows applied to a `ConfigView`, their changelog records restored into an
`IngestEngine`. Writes bench/results/ingest-state-<stamp>.json and prints a table.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from backhaul import db
from backhaul.configview import ConfigView
from backhaul.kafka import Out, make_producer, send_all
from backhaul.settings import PROJECT_ROOT, settings
from backhaul.topics import topic
from bench.cpu import background_load
from bench.ingest_rate import topic_size
from bench.progress import Progress
from bench.sandbox import sandbox
from ingest.engine import DeviceState, IngestEngine
from ingest.stage import read_changelog
from program.demo.seed import seed_network
from program.supervised import WorkerProcess
from schemas.config_records import config_key, encode_config_row
from schemas.device_state import decode_device_state, encode_device_state
from schemas.frames import encode_frame
from schemas.topics import CONFIG, FRAMES, FRAMES_REJECTED, INGEST_STATE, MESSAGES_ADVANCED
from simulator.network import Device, Network, build_network, device_id, message_frames

CHUNK = 50_000
SETTLE_S = 2.0
POLL_S = 0.05
DEVICE_COLUMNS = ("id", "name", "device_type_id", "group_id", "lat", "lng")
MiB = 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.ingest_state", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=1_000_000, help="registered devices (default 1,000,000)")
    p.add_argument("--restarts", type=int, default=3, help="kill -9 and restart, per phase (default 3)")
    p.add_argument("--stations", type=int, default=20)
    p.add_argument("--max-stations", type=int, default=3, help="stations hearing a message, at most (default 3)")
    p.add_argument("--window-s", type=float, default=5.0,
                   help="DATA_ADVANCED window (default 5: shorter than 25 only to wait less; the state left "
                        "when it closes is the same)")
    p.add_argument("--keep-alive", type=int, default=86400,
                   help="the device type's keep-alive, s (default a day: every state holds a deadline; 0: none)")
    p.add_argument("--sample", type=int, default=20_000, help="devices measured with tracemalloc (default 20,000)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds each step may take (default 1800)")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results")
    return p


# Pure figures ----------------------------------------------------------------
def parse_memory(status: str) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a /proc/PID/status text, in bytes."""
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rssBytes": int(fields["VmRSS"].split()[0]) * 1024, "peakBytes": int(fields["VmHWM"].split()[0]) * 1024}


def log_figures(log_text: str, started: float) -> dict[str, Any]:
    """From a worker's JSON log lines: when its configuration view was loaded and its state restored (seconds
    after `started`, epoch s), and what the "ingest state restored" line says (the last of each)."""
    figures: dict[str, Any] = {}
    for line in log_text.splitlines():
        try:
            entry = orjson.loads(line)
            at = datetime.strptime(entry["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        if entry.get("msg") == "config view loaded":
            figures["configLoadedS"] = round(at - started, 3)
        elif entry.get("msg") == "ingest state restored":
            figures.update(restoredS=round(at - started, 3), restoreSeconds=entry.get("seconds"),
                           restoredDevices=entry.get("devices"))
    return figures


def per_device(after: dict[str, int], before: dict[str, int], devices: int) -> int:
    """RSS bytes added per device between two memory readings."""
    return round((after["rssBytes"] - before["rssBytes"]) / max(1, devices))


# The network, in chunks -------------------------------------------------------
def device_chunks(n_stations: int, devices: int) -> Iterator[list[Device]]:
    """Every device, CHUNK at a time, the same on every call (one seed a chunk), ids `device_id(0..n-1)`."""
    for start in range(0, devices, CHUNK):
        chunk = build_network(n_stations, min(CHUNK, devices - start), seed=start + 1).devices
        for i, device in enumerate(chunk, start):
            device.id = device_id(i)
        yield chunk


def device_rows(ids: dict[str, str], n_stations: int, devices: int) -> list[tuple[Any, ...]]:
    """The `devices` rows (DEVICE_COLUMNS) of every device, as `seed_network` writes them."""
    return [(d.id, f"device {d.id}", ids["deviceType"], ids["group"], round(d.lat, 5), round(d.lng, 5))
            for chunk in device_chunks(n_stations, devices) for d in chunk]


async def register(conn: asyncpg.Connection, rows: list[tuple[Any, ...]], progress: Progress) -> float:
    """COPY the rows into `devices`, CHUNK a transaction (the outbox triggers fire per row); returns the
    seconds it took."""
    started = time.monotonic()
    for start in range(0, len(rows), CHUNK):
        await conn.copy_records_to_table("devices", records=rows[start:start + CHUNK], columns=list(DEVICE_COLUMNS))
        progress.update(f"registering: {min(start + CHUNK, len(rows)):,} of {len(rows):,} devices")
    return time.monotonic() - started


async def send_messages(n_stations: int, devices: int, max_stations: int, progress: Progress) -> int:
    """One message of every device to `frames`; returns how many frames."""
    producer = make_producer(linger_ms=20)
    await producer.start()
    sent = 0
    try:
        for n, chunk in enumerate(device_chunks(n_stations, devices)):
            rng = random.Random(n)
            records = [Out(topic(FRAMES), d.id.encode(), encode_frame(f))
                       for d in chunk for f in message_frames(d, rng, max_stations=max_stations)]
            sent += await send_all(producer, records)
            progress.update(f"frames: {sent:,} sent")
    finally:
        await producer.stop()
    return sent


# Workers --------------------------------------------------------------------
def memory(worker: WorkerProcess) -> dict[str, int]:
    """The worker's RSS and peak RSS now (`parse_memory`)."""
    assert worker.proc is not None, "start() first"
    return parse_memory(Path(f"/proc/{worker.proc.pid}/status").read_text())


async def wait_status(worker: WorkerProcess, done: Callable[[dict[str, Any]], bool], timeout: float,
                      what: str, since: float | None = None) -> float:
    """Poll the worker's /status until `done(status)`; returns the seconds since `since` (monotonic; default:
    now)."""
    started = time.monotonic() if since is None else since
    async with aiohttp.ClientSession() as session:
        while True:
            status = await worker.status(session)
            elapsed = time.monotonic() - started
            if status is not None and done(status):
                return elapsed
            if elapsed > timeout:
                raise TimeoutError(f"{what}: not in {timeout} s (last /status {status}):\n{worker.log_tail()}")
            await asyncio.sleep(POLL_S)


async def wait_log(worker: WorkerProcess, started: float, key: str, timeout: float) -> dict[str, Any]:
    """The worker's `log_figures` once they hold `key`."""
    deadline = time.monotonic() + timeout
    while True:
        figures = log_figures(worker.log_path.read_text(errors="replace"), started)
        if key in figures:
            return figures
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {key} in the log of {worker.roles} in {timeout} s:\n{worker.log_tail()}")
        await asyncio.sleep(POLL_S)


async def start_timed(roles: str, env: dict[str, str], log_path: Path, timeout: float) -> tuple[WorkerProcess,
                                                                                                   dict[str, Any]]:
    """Start a worker; seconds to its /status answering (the configuration view is loaded first), to ready,
    to its log lines; then its memory, once settled."""
    started, since = time.time(), time.monotonic()
    worker = WorkerProcess(roles, env, log_path).start()
    answered = await wait_status(worker, lambda _: True, timeout, f"{roles} answering", since)
    ready = await wait_status(worker, lambda s: bool(s.get("ready")), timeout, f"{roles} ready", since)
    # The stage says ready once its consumer has partitions, which may be before their state is restored:
    # the log line says when the restore ended.
    figures = await wait_log(worker, started, "restoredS", timeout)
    await asyncio.sleep(SETTLE_S)
    return worker, {"answeredS": round(answered, 3), "readyS": round(ready, 3), **figures, **memory(worker)}


async def restarts(worker: WorkerProcess, phase: str, count: int, timeout: float) -> tuple[WorkerProcess,
                                                                                          list[dict[str, Any]]]:
    """Kill the worker with SIGKILL and start it again at once, `count` times; each restart's figures."""
    results = []
    for n in range(1, count + 1):
        worker.kill9()
        worker, figures = await start_timed(worker.roles, worker.env,
                                            worker.log_path.with_name(f"ingest-{phase}-{n}.log"), timeout)
        results.append(figures)
        print(f"  restart ({phase}) {n}/{count}: ready in {figures['readyS']} s, restore ended at "
              f"{figures['restoredS']} s, RSS {figures['rssBytes'] / MiB:,.1f} MiB", file=sys.stderr, flush=True)
    return worker, results


# Steps --------------------------------------------------------------------
async def sample_memory(worker: WorkerProcess, since: float, into: list[list[float]]) -> None:
    """Append [seconds since `since`, RSS bytes] to `into` every second until cancelled."""
    while True:
        into.append([round(time.monotonic() - since, 1), memory(worker)["rssBytes"]])
        await asyncio.sleep(1.0)


async def drained_config(conn: asyncpg.Connection, timeout: float) -> int:
    """Records in the config topic once the relay has published every outbox row."""
    deadline = time.monotonic() + timeout
    while await conn.fetchval("SELECT count(*) FROM config_outbox"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"config_outbox not drained in {timeout} s")
        await asyncio.sleep(0.2)
    return await topic_size(topic(CONFIG))


async def wait_state(devices: int, timeout: float, progress: Progress) -> None:
    """Until every message's window has closed (one DATA_ADVANCED each) and the changelog stops growing."""
    deadline = time.monotonic() + timeout
    while (closed := await topic_size(topic(MESSAGES_ADVANCED))) < devices:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{closed:,} of {devices:,} windows closed in {timeout} s")
        progress.update(f"state: {closed:,} of {devices:,} windows closed")
        await asyncio.sleep(1.0)
    written = -1
    while (now := await topic_size(topic(INGEST_STATE))) != written:
        written = now
        await asyncio.sleep(1.0)
    progress.done(f"state: {devices:,} windows closed, {written:,} changelog records")


def disk_bytes(name: str) -> int | None:
    """Bytes of the topic's log segments in the local broker's data directory (deploy/local), if found."""
    data = settings().state_dir / "kafka" / "data"
    if not data.is_dir():
        return None
    return sum(f.stat().st_size for p in range(settings().kafka_partitions)
               for f in (data / f"{name}-{p}").glob("*.log"))


async def read_back(sample: int) -> tuple[dict[str, Any], list[tuple[int, bytes]]]:
    """The changelog's figures, and the latest records of up to `sample` devices (partition, value).

    Read a partition at a time, as a worker restores it, so that this process holds one partition."""
    name = topic(INGEST_STATE)
    partitions = settings().kafka_partitions
    devices = latest_bytes = 0
    kept: list[tuple[int, bytes]] = []
    started = time.monotonic()
    for p in range(partitions):
        for key, (partition, record) in (await read_changelog(name, {p})).items():
            value = encode_device_state(record)  # orjson gives back the bytes it read
            devices += 1
            latest_bytes += len(key.encode()) + len(value)
            if len(kept) < sample * (p + 1) // partitions:
                kept.append((partition, value))
    records, on_disk = await topic_size(name), disk_bytes(name)
    return {"records": records, "devices": devices, "readInBenchS": round(time.monotonic() - started, 3),
            "latestRecordBytesMean": round(latest_bytes / max(1, devices), 1), "latestRecordsBytes": latest_bytes,
            "onDiskBytes": on_disk,
            "onDiskBytesPerRecord": round(on_disk / records, 1) if on_disk and records else None}, kept


def traced_bytes(build: Callable[[], object]) -> int:
    """Bytes Python allocated for what `build()` returns (tracemalloc, while it is still alive)."""
    tracemalloc.start()
    try:
        kept = build()
        size = tracemalloc.get_traced_memory()[0]
        del kept
        return size
    finally:
        tracemalloc.stop()


async def python_bytes(conn: asyncpg.Connection, states: list[tuple[int, bytes]], sample: int) -> dict[str, Any]:
    """Python-level bytes per device: its configuration row in a `ConfigView` (as the relay publishes it)
    and its state restored in an `IngestEngine`, each over a sample."""
    rows = await conn.fetch("SELECT id, to_jsonb(t)::text AS row FROM devices t LIMIT $1", sample)
    changed_at = int(time.time() * 1000)
    records = [(config_key("device", r["id"]), encode_config_row(orjson.loads(r["row"]), changed_at)) for r in rows]
    view = ConfigView()
    engine = IngestEngine(view)

    def apply() -> ConfigView:
        for key, value in records:
            view.apply(key, value)
        return view

    def restore() -> IngestEngine:
        for partition, value in states:
            engine.restore(DeviceState.from_json(decode_device_state(value), partition))
        return engine

    return {"sample": len(records), "configRowBytes": round(traced_bytes(apply) / max(1, len(records))),
            "stateSample": len(states), "deviceStateBytes": round(traced_bytes(restore) / max(1, len(states)))}


async def run(args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    n = args.devices
    stations = build_network(args.stations, 0).stations
    progress = Progress()
    busy = await background_load()
    logs = settings().state_dir / "bench" / f"ingest-state-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    async with sandbox({"BACKHAUL_ADVANCED_WINDOW_S": str(args.window_s)}) as box:
        env = {**os.environ, **box.env}
        conn = await db.connect()
        relay = WorkerProcess("relay", env, logs / "relay.log").start()
        ingest: WorkerProcess | None = None
        try:
            ids = await seed_network(conn, Network(stations, []), name="ingest-state", keep_alive=args.keep_alive)
            ingest, first = await start_timed("ingest", env, logs / "ingest-empty.log", args.timeout)
            base = await drained_config(conn, args.timeout)
            await wait_status(ingest, lambda s: s["config"] >= base, args.timeout, "the seeded configuration")
            empty = memory(ingest)

            rows = device_rows(ids, args.stations, n)
            started = time.monotonic()
            insert_s = await register(conn, rows, progress)
            del rows
            relayed_s = (time.monotonic() - started
                         + await wait_status(ingest, lambda s: s["config"] >= base + n, args.timeout, "registration"))
            progress.done(f"registered: {n:,} devices in {relayed_s:.1f} s ({insert_s:.1f} s to insert)")
            await asyncio.sleep(SETTLE_S)
            followed = memory(ingest)
            ingest, config_restarts = await restarts(ingest, "config", args.restarts, args.timeout)

            started = time.monotonic()
            timeline: list[list[float]] = []
            sampler = asyncio.create_task(sample_memory(ingest, started, timeline))
            frames = await send_messages(args.stations, n, args.max_stations, progress)
            published_s = time.monotonic() - started
            await wait_state(n, args.timeout, progress)
            stated_s = time.monotonic() - started
            await asyncio.sleep(SETTLE_S)
            sampler.cancel()
            with_state = memory(ingest)
            changelog, sample = await read_back(args.sample)
            ingest, state_restarts = await restarts(ingest, "state", args.restarts, args.timeout)
            python = await python_bytes(conn, sample, args.sample)
            rejected = await topic_size(topic(FRAMES_REJECTED))
        finally:
            if ingest is not None:
                ingest.stop()
            relay.stop()
            await conn.close()
    registered, restored = config_restarts[-1], state_restarts[-1]
    return {
        "devices": n, "machineBusyCoresBefore": busy, "logs": str(logs),
        "registration": {"insertS": round(insert_s, 3), "insertPerS": round(n / insert_s),
                         "registeredS": round(relayed_s, 3), "perS": round(n / relayed_s),
                         "configRecords": base + n},
        "traffic": {"messages": n, "frames": frames, "publishS": round(published_s, 3),
                    "stateWrittenS": round(stated_s, 3), "rejectedFrames": rejected, "rssTimeline": timeline},
        "memory": {"noDevice": empty, "registeredFollowed": followed, "registered": registered,
                   "withState": with_state, "restored": restored,
                   "perRegisteredDevice": per_device(registered, empty, n),
                   "perDeviceState": per_device(with_state, registered, n),
                   "perDeviceStateRestored": per_device(restored, registered, n)},
        "python": python, "changelog": changelog,
        "firstStart": first, "configRestarts": config_restarts, "stateRestarts": state_restarts,
    }


def _spread(restarts: list[dict[str, Any]], key: str) -> str:
    return " / ".join(f"{r[key]:.2f}" if isinstance(r.get(key), float | int) else "-" for r in restarts)


def table(r: dict[str, Any]) -> str:
    m, py, cl, reg = r["memory"], r["python"], r["changelog"], r["registration"]
    rows = [
        ("devices", f"{r['devices']:,}"),
        ("registration (COPY -> relay -> view)", f"{reg['perS']:,} devices/s ({reg['insertPerS']:,}/s to insert)"),
        ("RSS, no device", f"{m['noDevice']['rssBytes'] / MiB:,.1f} MiB"),
        ("RSS, registered (view loaded)", f"{m['registered']['rssBytes'] / MiB:,.1f} MiB: "
                                          f"{m['perRegisteredDevice']:,} B/device (Python {py['configRowBytes']:,})"),
        ("RSS, every device with state", f"{m['withState']['rssBytes'] / MiB:,.1f} MiB: "
                                         f"+{m['perDeviceState']:,} B/device"),
        ("RSS, after restore", f"{m['restored']['rssBytes'] / MiB:,.1f} MiB (peak "
                               f"{m['restored']['peakBytes'] / MiB:,.1f}): +{m['perDeviceStateRestored']:,} B/device "
                               f"(Python {py['deviceStateBytes']:,})"),
        ("changelog", f"{cl['records']:,} records, {(cl['onDiskBytes'] or 0) / MiB:,.1f} MiB on disk; "
                      f"latest record {cl['latestRecordBytesMean']:,.0f} B/device"),
        ("restart, configuration only (s)", f"ready {_spread(r['configRestarts'], 'readyS')}; view loaded "
                                            f"{_spread(r['configRestarts'], 'configLoadedS')}"),
        ("restart with state (s)", f"ready {_spread(r['stateRestarts'], 'readyS')}; restored "
                                   f"{_spread(r['stateRestarts'], 'restoredS')} (logged "
                                   f"{_spread(r['stateRestarts'], 'restoreSeconds')})"),
    ]
    return "\n".join(f"{name:<38}{value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.devices < 1 or args.restarts < 1 or args.sample < 1:
        build_parser().error("--devices, --restarts and --sample: at least 1")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result = asyncio.run(run(args, stamp))
    print(table(result))
    path = args.out / f"ingest-state-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps({"command": "python -m bench.ingest_state " + " ".join(argv or []),
                                   "startedAt": stamp, "options": vars(args) | {"out": str(args.out)}, **result},
                                  option=orjson.OPT_INDENT_2))
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
