"""Recovery after kill -9: the outage per kill, with the consumer settings before and after static membership.

    python -m bench.recovery [--rate 50] [--kills 3] [--spacing 20] [--roles ingest,router,delivery,store]
                             [--restart-after 0.5] [--modes old,new] [--out bench/results]

For each mode, in a private topic prefix and database (`bench.sandbox`): the
pipeline in four processes (`ingest | router | delivery | store,relay`), a
DATA callback to a stamping receiver, and the simulator at `--rate`
messages/s for the whole run. Every `--spacing` seconds one worker is killed
with SIGKILL and started again `--restart-after` seconds later, as the
supervisor would (its first pause), `--kills` times per role.

Modes: `old` is the consumer configuration before this change (dynamic
group members, heartbeat 2 s, session 10 s); `new` is the default (static
members with a stable instance id, heartbeat 1 s, session 10 s).

Per kill, from every message's callback delay (first frame -> callback):
- **outage**: first frame after the kill -> its callback (the delay of the first message sent after it);
- **gap**: the longest silence between two callbacks from the kill until the next kill;
- **p50/p99** of the delay of the messages sent from the kill to `AROUND_S` after it.
The store is not on the callback path: for its kills the same figures are
taken from first frame -> row in PostgreSQL (`messages.stored_at`).
Writes `<out>/recovery-<stamp>.json` with every figure and every delay around each kill.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import orjson

from backhaul import db
from backhaul.kafka import make_producer
from backhaul.settings import PROJECT_ROOT, settings
from bench.accounting import nearest_rank
from bench.load import Key, build_networks, drive, first_frames
from bench.pipeline import LAYOUTS, Pipeline
from bench.receiver import DATA, make_receiver
from bench.sandbox import sandbox
from program.demo.seed import seed_network
from program.supervised import WorkerProcess
from schemas.frames import FrameRecord

MODES = {
    "old": {"BACKHAUL_STATIC_MEMBERSHIP": "0", "BACKHAUL_KAFKA_HEARTBEAT_MS": "2000",
            "BACKHAUL_KAFKA_SESSION_TIMEOUT_MS": "10000"},
    "new": {},
}
AROUND_S = 10.0
WARMUP_S = 10.0
TAIL_S = 5.0
GRACE_S = 40.0
WORKER_ENV = {"BACKHAUL_LOG_LEVEL": "WARNING"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=50.0, help="messages/s offered (default 50)")
    p.add_argument("--kills", type=int, default=3, help="kills per role (default 3)")
    p.add_argument("--spacing", type=float, default=20.0, help="seconds between kills (default 20: > the 10 s session)")
    p.add_argument("--roles", default="ingest,router,delivery,store", help="the workers to kill, in turn")
    p.add_argument("--restart-after", type=float, default=None,
                   help="seconds between the kill and the restart (default: the supervisor's first pause)")
    p.add_argument("--modes", default="old,new", help="old, new or both (default old,new)")
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--stations", type=int, default=3)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results")
    return p


def percentiles_ms(delays_s: list[float]) -> dict:
    if not delays_s:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    s = sorted(delays_s)
    return {"count": len(s), "p50": round(nearest_rank(s, 0.5) * 1000), "p99": round(nearest_rank(s, 0.99) * 1000),
            "max": round(s[-1] * 1000)}


def kill_figures(killed_at: float, until: float, first_s: dict[Key, float], done_s: dict[Key, float]) -> dict:
    """Outage, gap and delays around one kill (times in epoch seconds)."""
    sent_after = sorted((t, key) for key, t in first_s.items() if killed_at <= t < until)
    first = next(((t, key) for t, key in sent_after if key in done_s), None)
    arrivals = sorted(at for at in done_s.values() if killed_at <= at < until)
    gap = max((b - a for a, b in zip([killed_at, *arrivals], arrivals, strict=False)), default=until - killed_at)
    around = [(t, done_s[key] - t) for t, key in sent_after if t < killed_at + AROUND_S and key in done_s]
    return {
        "outageS": None if first is None else round(done_s[first[1]] - first[0], 3),
        "gapS": round(gap, 3),
        "delayMs": percentiles_ms([d for _, d in around]),
        "undelivered": sum(1 for _, key in sent_after if key not in done_s),
        "delays": [[round(t - killed_at, 3), round(d * 1000)] for t, d in around],
    }


async def _seed(networks, receiver_url: str) -> int:
    callbacks = [{"callback_subtype": 0, "url": receiver_url + "/data?device={device}&seq={seqNumber}",
                  "http_method": "GET"}]
    conn = await db.connect()
    try:
        await seed_network(conn, networks.registered, name="recovery", callbacks=callbacks)
    finally:
        await conn.close()
    return len(networks.registered.devices) + len(networks.registered.stations) + len(callbacks)


async def _stored_at() -> dict[Key, float]:
    conn = await db.connect()
    try:
        rows = await conn.fetch("SELECT device_id, seq_number, extract(epoch FROM stored_at)::float8 AS at "
                                "FROM messages")
    finally:
        await conn.close()
    return {(r["device_id"], r["seq_number"]): r["at"] for r in rows}


async def run_mode(mode: str, args: argparse.Namespace, roles: list[str], stamp: str) -> dict:
    """One pipeline under one configuration, killed `args.kills` times per role."""
    restart_after = settings().restart_first_s if args.restart_after is None else args.restart_after
    networks = build_networks(args.stations, args.devices)
    duration = WARMUP_S + len(roles) * args.kills * args.spacing + TAIL_S
    kills: list[dict] = []
    async with sandbox({**WORKER_ENV, **MODES[mode]}) as sb:
        receiver = make_receiver("subprocess")
        await receiver.start()
        pipeline = Pipeline(LAYOUTS["4"], sb.env, settings().state_dir / "bench" / f"recovery-{stamp}-{mode}")
        producer = make_producer(linger_ms=5)
        try:
            config_records = await _seed(networks, receiver.url)
            pipeline.start()
            await pipeline.wait_ready(config_records)
            await producer.start()
            record: list[FrameRecord] = []
            traffic = asyncio.create_task(drive(networks.registered, rate=args.rate, duration=duration,
                                                max_stations=2, seed=7, producer=producer, record=record))
            await asyncio.sleep(WARMUP_S)
            for role in roles:
                for n in range(args.kills):
                    i = next(i for i, w in enumerate(pipeline.workers) if role in w.roles.split(","))
                    old = pipeline.workers[i]
                    killed_at = time.time()
                    old.kill9()
                    await asyncio.sleep(restart_after)
                    new = WorkerProcess(old.roles, old.env, old.log_path.with_name(f"{role}-restart-{n + 1}.log"))
                    pipeline.workers[i] = new.start()
                    kills.append({"role": role, "killedAt": killed_at, "restartedAt": time.time()})
                    print(f"  {mode}: killed {old.roles} ({n + 1}/{args.kills})", flush=True)
                    await asyncio.sleep(args.spacing - restart_after)
            await traffic
            first_s = {k: ms / 1000 for k, ms in first_frames(record).items()}
            deadline = time.monotonic() + GRACE_S
            while True:
                done_s: dict[Key, float] = {}
                for kind, device, seq, at in await receiver.arrivals():
                    if kind == DATA:
                        done_s.setdefault((device, seq), at)
                if len(done_s) >= len(first_s) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1.0)
            stored_s = await _stored_at()
        finally:
            await producer.stop()
            pipeline.stop()
            await receiver.stop()
    first_kill = kills[0]["killedAt"] if kills else float("inf")
    steady = [done_s[k] - t for k, t in first_s.items() if t < first_kill and k in done_s]
    for i, kill in enumerate(kills):
        until = kills[i + 1]["killedAt"] if i + 1 < len(kills) else kill["killedAt"] + args.spacing
        kill.update(kill_figures(kill["killedAt"], until, first_s, stored_s if kill["role"] == "store" else done_s))
        kill["measured"] = "stored" if kill["role"] == "store" else "callback"
    return {"mode": mode, "env": MODES[mode], "restartAfterS": restart_after, "messages": len(first_s),
            "delivered": len(done_s), "steadyDelayMs": percentiles_ms(steady), "kills": kills,
            "byRole": {role: summarize([k for k in kills if k["role"] == role]) for role in roles}}


def summarize(kills: list[dict]) -> dict:
    """Outages and pooled delays of several kills."""
    delays = [d / 1000 for k in kills for _, d in k["delays"]]
    outages = [k["outageS"] for k in kills if k["outageS"] is not None]
    return {"kills": len(kills), "outageS": outages, "gapS": [k["gapS"] for k in kills],
            "delayMs": percentiles_ms(delays), "undelivered": sum(k["undelivered"] for k in kills)}


def table(results: list[dict]) -> str:
    lines = [f"{'mode':5} {'killed':9} {'measured':9} {'outage per kill (s)':24} {'gap per kill (s)':22} "
             f"{'delay p50 / p99 / max, +{:g} s (ms)'.format(AROUND_S):34} undelivered"]
    for r in results:
        for role, s in r["byRole"].items():
            lines.append(f"{r['mode']:5} {role:9} {'stored' if role == 'store' else 'callback':9} "
                         f"{', '.join(f'{o:.1f}' for o in s['outageS']):24} "
                         f"{', '.join(f'{g:.1f}' for g in s['gapS']):22} "
                         f"{'{p50} / {p99} / {max}'.format(**s['delayMs']):34} {s['undelivered']}")
        lines.append(f"{r['mode']:5} {'(none)':9} {'callback':9} steady state before the first kill: p50 "
                     f"{r['steadyDelayMs']['p50']} ms, p99 {r['steadyDelayMs']['p99']} ms; "
                     f"{r['delivered']} of {r['messages']} messages delivered")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = set(roles) - {"ingest", "router", "delivery", "store"}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown or not roles or set(modes) - set(MODES) or not modes or args.kills < 1 or args.spacing < 2:
        build_parser().error("--roles: ingest, router, delivery, store; --modes: old, new; --kills >= 1; "
                             "--spacing >= 2")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = []
    for mode in modes:
        print(f"== {mode}: {MODES[mode] or 'defaults'}", flush=True)
        results.append(asyncio.run(run_mode(mode, args, roles, stamp)))
    print(table(results))
    # One line: it holds the delay of every message around every kill (`python -m json.tool` shows it).
    path = args.out / f"recovery-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps({"command": "python -m bench.recovery " + " ".join(argv or []), "startedAt": stamp,
                                   "options": vars(args) | {"out": str(args.out)}, "results": results}))
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
