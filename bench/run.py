"""`backhaul bench`: the whole pipeline under a simulated network, measured end to end.

    backhaul bench [--stations N] [--devices N] [--stations-per-message K] [--rate MSG/S]
                   [--duration S] [--workers LAYOUT] [--window S] [--out DIR] [--find-max]

It creates a private topic prefix and database, registers the network with a
DATA callback and a DATA_ADVANCED callback to its own receiver, starts the
worker processes, drives the simulator, and reports throughput, latency, loss
and duplicates next to the raw aiokafka and aiohttp ceilings of the same run
(terminal table, JSON and PNG in --out).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import time
from pathlib import Path

from backhaul import db
from backhaul.kafka import make_producer
from backhaul.settings import PROJECT_ROOT, settings
from bench.ceilings import create_ceiling_topic, http_ceiling, kafka_ceiling
from bench.cpu import background_load, pid_sources, stack_sources
from bench.findmax import find_max, overload
from bench.lag import LagProbe
from bench.load import build_networks, check_capacity
from bench.pipeline import DEFAULT_LAYOUT, Pipeline, parse_layout
from bench.plot import plot
from bench.progress import Progress
from bench.receiver import make_receiver
from bench.report import format_table, write_json
from bench.step import Rig, run_step
from program.demo.seed import seed_network
from schemas.frames import encode_frame

ADVANCED_BODY = ('{"device":"{device}","seqNumber":{seqNumber},"lqi":"{lqi}",'
                 '"duplicates":{duplicates},"computedLocation":{computedLocation}}')
# Per-endpoint limits the benchmark gives its receiver, which takes every callback of
# the network: the default bulkhead (16 connections, 200 requests/s, 256 waiting)
# protects one customer among many, it is not what we measure.
WORKER_ENV = {"BACKHAUL_ENDPOINT_CONCURRENCY": "64", "BACKHAUL_ENDPOINT_RATE_PER_S": "1000000",
              "BACKHAUL_ENDPOINT_BURST": "1000000", "BACKHAUL_ENDPOINT_QUEUE": "2000",
              "BACKHAUL_LOG_LEVEL": "WARNING"}
KAFKA_CEILING_MAX_FRAMES = 300_000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="backhaul bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=20, help="base stations (default 20)")
    p.add_argument("--devices", type=int, default=5000, help="registered devices (default 5000)")
    p.add_argument("--stations-per-message", type=int, default=3,
                   help="at most K stations hear a message (1..K, each 1 or 3 repetitions; default 3)")
    p.add_argument("--rate", type=float, default=1275.0,
                   help="messages/s offered (default 1275: about 5,100 frames/s with K=3, 4 frames per message "
                        "on average); "
                        "with --find-max, the first step's rate")
    p.add_argument("--duration", type=float, default=60.0,
                   help="seconds of load (with --find-max: per step, after a warm-up of one --window)")
    p.add_argument("--workers", default=DEFAULT_LAYOUT,
                   help="worker processes: a preset 1-4 or 6 (4 = ingest | router | delivery | store,relay, the "
                        "default; 6 = two instances of ingest and of delivery) or a layout such as "
                        "'ingest,router;delivery;store,relay' (a stage named twice runs as two instances)")
    p.add_argument("--window", type=float, default=25.0, help="DATA_ADVANCED window in seconds (default 25)")
    p.add_argument("--grace", type=float, default=15.0,
                   help="seconds after the last frame + window before an undelivered message counts as lost")
    p.add_argument("--receiver", choices=("subprocess", "in-process"), default="subprocess",
                   help="where the stamping receiver runs (default: its own process)")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results",
                   help="folder for the JSON and the PNG (default bench/results/)")
    p.add_argument("--find-max", action="store_true",
                   help="step load: raise the rate until p99 > --p99-limit-ms or a message is lost")
    p.add_argument("--step-factor", type=float, default=1.25, help="rate multiplier between steps (default 1.25)")
    p.add_argument("--max-steps", type=int, default=10)
    p.add_argument("--p99-limit-ms", type=float, default=1000.0)
    p.add_argument("--overload", type=float, default=1.5,
                   help="with --find-max, then offer this multiple of the highest sustainable rate for --duration s "
                        "and report whether delivery holds within 10 %% of it and the backlog drains (graceful "
                        "saturation; default 1.5, 0 = skip)")
    p.add_argument("--unregistered", type=int, default=0,
                   help="extra devices left unregistered: their messages are rejected and must be reported lost "
                        "(checks the accounting)")
    p.add_argument("--no-ceilings", action="store_true", help="skip the raw aiokafka and aiohttp ceilings")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the topics and the database afterwards")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--seed", type=int, default=1)
    return p


def validate(args: argparse.Namespace) -> None:
    """Refuse options that cannot give a meaningful run, naming the option."""
    parse_layout(args.workers)
    for name in ("stations", "devices", "stations_per_message"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if args.rate <= 0 or args.duration <= 0 or args.window <= 0:
        raise ValueError("--rate, --duration and --window must be positive")
    if args.find_max and args.step_factor <= 1:
        raise ValueError("--step-factor must be above 1")
    if args.overload and args.overload <= 1:
        raise ValueError("--overload must be above 1 (or 0 to skip the overload step)")
    steps = sum(args.step_factor ** i for i in range(args.max_steps)) if args.find_max else 1
    seconds = args.duration + (args.window if args.find_max else 0)
    check_capacity(args.devices + args.unregistered, args.rate * seconds * steps)


def machine() -> dict:
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memoryGiB": mem, "cpu": cpu_model, "python": platform.python_version(),
            "kernel": platform.release(), "kafka": settings().kafka_bootstrap}


async def _seed(networks, receiver_url: str) -> int:
    callbacks = [
        {"callback_subtype": 0, "url": receiver_url + "/data?device={device}&seq={seqNumber}&data={data}",
         "http_method": "GET"},
        {"callback_subtype": 5, "callback_type": 1, "url": receiver_url + "/advanced", "http_method": "POST",
         "content_type": "application/json", "body_template": ADVANCED_BODY},
    ]
    conn = await db.connect()
    try:
        await seed_network(conn, networks.registered, name="bench", callbacks=callbacks)
    finally:
        await conn.close()
    return len(networks.registered.devices) + len(networks.registered.stations) + len(callbacks)


async def bench(args: argparse.Namespace, argv: list[str]) -> dict:
    """Run the benchmark; returns the full result (also what goes into the JSON)."""
    from bench.sandbox import sandbox

    layout = parse_layout(args.workers)
    networks = build_networks(args.stations, args.devices, unregistered=args.unregistered, seed=args.seed)
    progress = Progress(enabled=not args.quiet)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result: dict = {
        "mode": "find-max" if args.find_max else "run",
        "command": "backhaul bench " + shlex.join(argv),
        "startedAt": stamp, "machine": machine(), "layout": layout, "receiver": args.receiver,
        "options": {"stations": args.stations, "devices": args.devices, "stationsPerMessage": args.stations_per_message,
                    "rate": args.rate, "duration": args.duration, "window": args.window, "grace": args.grace,
                    "unregistered": args.unregistered, "workerEnv": WORKER_ENV},
    }
    worker_env = {**WORKER_ENV, "BACKHAUL_ADVANCED_WINDOW_S": str(args.window)}
    async with sandbox(worker_env, keep=args.keep) as sb:
        receiver = make_receiver(args.receiver)
        await receiver.start()
        try:
            config_records = await _seed(networks, receiver.url)
            await create_ceiling_topic()
            pipeline = Pipeline(layout, sb.env, settings().state_dir / "bench" / f"{stamp}-{sb.tag}")
            producer = make_producer(linger_ms=5)
            lag = LagProbe(sb.prefix)
            progress.done(f"bench: prefix {sb.prefix} database {sb.database}; starting {len(layout)} worker "
                          f"process(es): {' | '.join(layout)}")
            try:
                pipeline.start()
                await pipeline.wait_ready(config_records)
                await producer.start()
                await lag.start()
                result["backgroundBusyCores"] = await background_load()
                pids = {**pipeline.pids(), "bench": os.getpid()}
                if args.receiver == "subprocess":
                    pids["receiver"] = receiver.pid
                rig = Rig(networks, producer, receiver, {**pid_sources(pids), **stack_sources()}, args.window,
                          args.grace, args.stations_per_message, progress, lag, workers=pipeline.workers)
                if args.find_max:
                    steps, best = await find_max(rig, start_rate=args.rate, factor=args.step_factor,
                                                 duration=args.duration, p99_limit_ms=args.p99_limit_ms,
                                                 max_steps=args.max_steps)
                    if best is not None and args.overload:
                        steps.append(await overload(rig, best, factor=args.overload, duration=args.duration))
                else:
                    steps, best = [await run_step(rig, rate=args.rate, duration=args.duration)], None
                result["steps"] = steps
            finally:
                await lag.stop()
                await producer.stop()
                pipeline.stop()
            if not args.no_ceilings:
                result["ceilings"] = await _ceilings(rig, receiver.url, progress)
        finally:
            await receiver.stop()
    result["summary"] = _summary(result, best)
    result["title"] = (f"backhaul bench {stamp}: {args.stations} stations, {args.devices} devices, "
                       f"K={args.stations_per_message}, workers {' | '.join(layout)}")
    return result


async def _ceilings(rig: Rig, receiver_url: str, progress: Progress) -> dict:
    frames = [(f["device"].encode(), encode_frame(f)) for f in rig.last_record[:KAFKA_CEILING_MAX_FRAMES]]
    progress.done(f"ceilings: raw aiokafka produce->consume of {len(frames):,} frames ...")
    kafka = await kafka_ceiling(frames)
    n = max(2000, min(30000, len(rig.last_record) // 2))
    progress.done(f"ceilings: raw aiohttp, {n:,} POSTs to the receiver ...")
    http = await http_ceiling(receiver_url + "/ceiling", requests=n, concurrency=int(WORKER_ENV[
        "BACKHAUL_ENDPOINT_CONCURRENCY"]), body=b'{"device":"100000","seqNumber":1,"lqi":"Good"}')
    return {"kafka": kafka, "http": http}


def _summary(result: dict, best: dict | None) -> dict:
    steps = result["steps"]
    kafka = (result.get("ceilings") or {}).get("kafka")
    if result["mode"] == "find-max":
        chosen = best
        summary = {"maxSustainable": None if best is None else {
            "framesPerS": best["offered"]["framesPerS"], "messagesPerS": best["offered"]["messagesPerS"],
            "p99Ms": best["steadyLatencyMs"]["p99"], "step": steps.index(best) + 1}}
        overloaded = [s["saturation"] for s in steps if "saturation" in s]
        if overloaded:
            summary["saturation"] = overloaded[-1]
    else:
        chosen = steps[0]
        summary = {}
    if chosen:
        summary.update({
            "framesPerS": chosen["throughput"]["framesPerS"], "messagesPerS": chosen["throughput"]["messagesPerS"],
            "deliveriesPerS": chosen["throughput"]["deliveriesPerS"],
            "latencyMs": {k: chosen["latencyMs"][k] for k in ("p50", "p95", "p99")},
            "steadyLatencyMs": {k: chosen["steadyLatencyMs"][k] for k in ("p50", "p95", "p99")},
            "advancedLatenessMs": {k: chosen["advancedLatenessMs"][k] for k in ("p50", "p95", "p99")},
            "lostMessages": chosen["accounting"]["lostMessages"], "duplicates": chosen["accounting"]["duplicates"],
        })
        if kafka:
            summary["kafkaCeilingFramesPerS"] = kafka["framesPerS"]
            summary["ratioToKafkaCeiling"] = round(chosen["throughput"]["framesPerS"] / kafka["framesPerS"], 4)
    http = (result.get("ceilings") or {}).get("http")
    if http:
        summary["httpCeilingRequestsPerS"] = http["requestsPerS"]
    return summary


def main(argv: list[str]) -> int:
    """Entry point of `backhaul bench`; writes <out>/bench-<stamp>.json and .png."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        validate(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        result = asyncio.run(bench(args, argv))
    except KeyboardInterrupt:
        return 130
    print(format_table(result))
    name = f"bench-{result['startedAt']}{'-findmax' if args.find_max else ''}"
    json_path = write_json(result, args.out / f"{name}.json")
    print(f"JSON: {json_path}")
    if not args.no_plot:
        png = plot(result, args.out / f"{name}.png")
        print(f"PNG:  {png}" if png else "PNG:  skipped (matplotlib missing: pip install 'backhaul[bench]')")
    return 0
